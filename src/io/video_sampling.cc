#include "io/video_sampling.h"

#include <cmath>
#include <string>

#include "plm/error.h"

namespace plm {

std::vector<int64_t> SampleFrameIndices(int64_t total_frames, double video_fps,
                                        const VideoSampling& sampling) {
  if (total_frames < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "video sampling: the video has no frames (" + std::to_string(total_frames) + ")");
  }
  if (sampling.num_frames && sampling.fps) {
    throw Error(ErrorCode::kInvalidArgument,
                "video sampling: num_frames and fps are mutually exclusive");
  }
  std::vector<int64_t> out;
  if (!sampling.num_frames && !sampling.fps) {
    for (int64_t i = 0; i < total_frames; ++i) out.push_back(i);
    return out;
  }
  int64_t n = 0;
  if (sampling.fps) {
    if (!(*sampling.fps > 0) || !std::isfinite(*sampling.fps)) {
      throw Error(ErrorCode::kInvalidArgument, "video sampling: fps must be positive");
    }
    if (!(video_fps > 0) || !std::isfinite(video_fps)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "video sampling: fps sampling needs the video's frame rate, which is unknown");
    }
    // int(total / video_fps * fps) in double, truncated like Python's int().
    const double want = static_cast<double>(total_frames) / video_fps * *sampling.fps;
    n = want >= static_cast<double>(total_frames) ? total_frames + 1 : static_cast<int64_t>(want);
    if (n < 1) n = 1;  // the reference fails for 0 and 1; one frame is the useful answer
  } else {
    n = *sampling.num_frames;
    if (n < 1) {
      throw Error(ErrorCode::kInvalidArgument,
                  "video sampling: num_frames must be at least 1 (got " + std::to_string(n) + ")");
    }
  }
  if (n > total_frames) {
    // The reference raises; we give every frame.
    for (int64_t i = 0; i < total_frames; ++i) out.push_back(i);
    return out;
  }
  // torch.arange(0, total, step) with float32 values computed in double, then .int().
  const double step = static_cast<double>(total_frames) / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(static_cast<double>(i) * step);
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

}  // namespace plm
