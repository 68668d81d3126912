// libFuzzer target for the video entry point: FFmpeg demux + decode from memory, frame
// selection and per-frame preprocessing. plm::Error is an accepted outcome; crashes, leaks,
// sanitizer reports, timeouts and out-of-memory are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/video_processor.h"
#include "io/video_reader.h"
#include "plm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  plm::DecodeLimits limits;
  limits.max_pixels = 1 << 20;
  limits.max_video_seconds = 600;
  limits.max_video_frames = 8;
  try {
    auto video = plm::OpenFfmpegVideoMemory(std::span<const uint8_t>(data, size), "fuzz", limits);
    plm::VideoProcessorConfig config;
    config.size_height = config.size_width = 28;
    const plm::VideoProcessor processor(config, limits);
    plm::VideoOptions options;
    options.num_threads = 1;
    options.sampling.num_frames = std::min<int64_t>(4, video->info().total_frames);
    const plm::ProcessedVideo out = processor.Preprocess(*video, options);
    if (out.pixel_values.size() != static_cast<size_t>(out.num_frames) * 3 * 28 * 28)
      __builtin_trap();
  } catch (const plm::Error&) {
  }
  return 0;
}
