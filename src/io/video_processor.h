// PerceptionLM video preprocessing (plm-spec.md §3): sample frames, squash each to the video
// size (one tile per frame, no thumbnail), rescale and normalise like image tiles.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/media_limits.h"
#include "io/video_sampling.h"
#include "io/video_source.h"
#include "plm/error.h"

namespace plm {

// The "video_processor" block of processor_config.json (or video_preprocessor_config.json).
struct VideoProcessorConfig {
  int size_height = 448;
  int size_width = 448;
  bool do_resize = true;  // false: frames must already be size_height x size_width
  bool do_rescale = true;
  bool do_normalize = true;
  bool do_convert_rgb = true;  // frames are decoded to RGB: no effect
  int resample = 3;            // BICUBIC only (CheckResample)
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
  VideoSampling default_sampling;  // from num_frames / fps keys when the config has them
  int patch_size = 14;
  int pooling_ratio = 2;

  // Throws `code` naming `what` when a value is out of range (square size 1..8192, image_std
  // zero, rescale_factor) or kUnsupported for another resample.
  void Check(ErrorCode code, const std::string& what) const;

  static VideoProcessorConfig FromJson(const Json& video_processor, const std::string& what);
  // `path`: a model folder (processor_config.json, else video_preprocessor_config.json) or a file.
  static VideoProcessorConfig Load(const std::string& path);
};

struct VideoOptions {
  // Overrides the config's default sampling when either field is set.
  VideoSampling sampling;
  int num_threads = 0;  // resize threads; <= 0: one per hardware thread
};

struct ProcessedVideo {
  int64_t num_frames = 0;
  int tile_size = 0;  // frames are tile_size x tile_size (size height == width)
  std::vector<int64_t> frame_indices;
  std::vector<float> pixel_values;  // [num_frames, 3, T, T]
};

class VideoProcessor {
 public:
  VideoProcessor(VideoProcessorConfig config, DecodeLimits limits = {});
  const VideoProcessorConfig& config() const { return config_; }

  // The frame indices a request will use (no decoding). Throws kLimit past max_video_frames.
  std::vector<int64_t> SelectFrames(const VideoInfo& info, const VideoOptions& options = {}) const;
  int64_t TokensPerFrame() const;
  // SelectFrames(...).size() * TokensPerFrame(): the <|video|> tokens a request costs.
  int64_t CountTokens(const VideoInfo& info, const VideoOptions& options = {}) const;

  ProcessedVideo Preprocess(VideoFrameSource& video, const VideoOptions& options = {}) const;

 private:
  VideoProcessorConfig config_;
  DecodeLimits limits_;
};

}  // namespace plm
