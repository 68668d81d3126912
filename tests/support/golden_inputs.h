// Model inputs stored in a golden case (input.input_ids, attention_mask, pixel values).
#pragma once

#include <vector>

#include "io/safetensors.h"
#include "plm/model.h"

namespace plm::test {

// Pixel buffers go to *pix / *vid, which must outlive the returned inputs.
ForwardInputs GoldenInputs(const SafetensorsFile& golden, std::vector<float>* pix,
                           std::vector<float>* vid);

}  // namespace plm::test
