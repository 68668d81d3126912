// Limits that keep hostile or oversized media inside bounded time and memory.
#pragma once

#include <cstdint>

namespace plm {

struct DecodeLimits {
  // Decoded pixels per image or video frame; bigger headers fail with kLimit before any pixel
  // buffer is allocated. The default is Pillow's decompression-bomb error threshold (2 x 89.5 MP).
  int64_t max_pixels = 178956970;
  // Bytes of an image file read into memory (videos are streamed and not bound by this).
  int64_t max_file_bytes = int64_t{512} << 20;
  // Progressive JPEG scans; thousands of tiny scans are a known CPU bomb.
  int max_jpeg_scans = 1000;
  // Video duration per the container; longer videos fail with kLimit before decoding.
  double max_video_seconds = 4 * 3600.0;
  // Frames one video may produce (each becomes a tile); "all frames" of a long video hits this.
  int64_t max_video_frames = 4096;
};

}  // namespace plm
