// Decoded 8-bit RGB image, the input of the image processor.
#pragma once

#include <cstdint>
#include <vector>

namespace plm {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height x width x 3, rows packed
};

}  // namespace plm
