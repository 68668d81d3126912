#include "io/video_processor.h"

#include <sys/stat.h>

#include <cmath>
#include <string>

#include "core/mapped_file.h"
#include "io/image_processor.h"
#include "io/resize_bicubic_aa.h"
#include "plm/error.h"

namespace plm {

VideoProcessorConfig VideoProcessorConfig::FromJson(const Json& j, const std::string& what) {
  if (!j.is_object()) throw Error(ErrorCode::kCorrupt, what + ": video processor is not an object");
  VideoProcessorConfig c;
  if (j.contains("size") && j.at("size").is_object()) {
    c.size_height = static_cast<int>(JsonIntOr(j.at("size"), "height", c.size_height, what));
    c.size_width = static_cast<int>(JsonIntOr(j.at("size"), "width", c.size_width, what));
  }
  c.do_resize = JsonBoolOr(j, "do_resize", c.do_resize, what);
  c.do_rescale = JsonBoolOr(j, "do_rescale", c.do_rescale, what);
  c.do_normalize = JsonBoolOr(j, "do_normalize", c.do_normalize, what);
  c.do_convert_rgb = JsonBoolOr(j, "do_convert_rgb", c.do_convert_rgb, what);
  c.resample = static_cast<int>(JsonIntOr(j, "resample", c.resample, what));
  c.rescale_factor = JsonNumberOr(j, "rescale_factor", c.rescale_factor, what);
  c.image_mean = ReadNumberTriple(j, "image_mean", c.image_mean, what);
  c.image_std = ReadNumberTriple(j, "image_std", c.image_std, what);
  if (j.contains("num_frames") && j.at("num_frames").is_number_integer()) {
    c.default_sampling.num_frames = j.at("num_frames").get<int64_t>();
  } else if (j.contains("fps") && j.at("fps").is_number()) {
    c.default_sampling.fps = j.at("fps").get<double>();
  }
  c.Check(ErrorCode::kCorrupt, what);
  return c;
}

void VideoProcessorConfig::Check(ErrorCode code, const std::string& what) const {
  if (size_height != size_width || size_height < 1 || size_height > 8192) {
    throw Error(size_height != size_width ? ErrorCode::kUnsupported : code,
                what + ": video size must be square, 1..8192 (got " + std::to_string(size_width) +
                    "x" + std::to_string(size_height) + ")");
  }
  for (double s : image_std)
    if (!(s != 0.0) || !std::isfinite(s)) throw Error(code, what + ": \"image_std\" has a zero");
  for (double m : image_mean)
    if (!std::isfinite(m)) throw Error(code, what + ": \"image_mean\" is not finite");
  if (!(rescale_factor > 0) || !std::isfinite(rescale_factor))
    throw Error(code, what + ": rescale_factor must be a positive number");
  CheckResample(resample, what);
}

VideoProcessorConfig VideoProcessorConfig::Load(const std::string& path) {
  std::string file = path;
  if (IsDirectory(path)) {
    file = path + "/processor_config.json";
    if (!IsRegularFile(file)) file = path + "/video_preprocessor_config.json";
    if (!IsRegularFile(file)) {
      throw Error(ErrorCode::kNotFound,
                  path + ": no processor_config.json or video_preprocessor_config.json");
    }
  }
  const Json j = ReadJsonFile(file);
  if (!j.is_object()) throw Error(ErrorCode::kCorrupt, file + ": not a JSON object");
  VideoProcessorConfig c =
      FromJson(j.contains("video_processor") ? j.at("video_processor") : j, file);
  c.patch_size = static_cast<int>(JsonIntOr(j, "patch_size", c.patch_size, file));
  c.pooling_ratio = static_cast<int>(JsonIntOr(j, "pooling_ratio", c.pooling_ratio, file));
  if (c.patch_size < 1 || c.pooling_ratio < 1) {
    throw Error(ErrorCode::kCorrupt, file + ": patch_size and pooling_ratio must be positive");
  }
  return c;
}

VideoProcessor::VideoProcessor(VideoProcessorConfig config, DecodeLimits limits)
    : config_(std::move(config)), limits_(limits) {}

std::vector<int64_t> VideoProcessor::SelectFrames(const VideoInfo& info,
                                                  const VideoOptions& options) const {
  const bool requested = options.sampling.num_frames || options.sampling.fps;
  const VideoSampling& sampling = requested ? options.sampling : config_.default_sampling;
  std::vector<int64_t> indices = SampleFrameIndices(info.total_frames, info.fps, sampling);
  if (static_cast<int64_t>(indices.size()) > limits_.max_video_frames) {
    throw Error(ErrorCode::kLimit, std::to_string(indices.size()) +
                                       " video frames exceed the limit of " +
                                       std::to_string(limits_.max_video_frames) +
                                       " (ask for fewer with num_frames or fps)");
  }
  return indices;
}

int64_t VideoProcessor::TokensPerFrame() const {
  const int64_t side = config_.size_height / config_.patch_size / config_.pooling_ratio;
  return side * side;
}

int64_t VideoProcessor::CountTokens(const VideoInfo& info, const VideoOptions& options) const {
  return static_cast<int64_t>(SelectFrames(info, options).size()) * TokensPerFrame();
}

ProcessedVideo VideoProcessor::Preprocess(VideoFrameSource& video,
                                          const VideoOptions& options) const {
  ProcessedVideo out;
  try {
    out.frame_indices = SelectFrames(video.info(), options);
  } catch (const Error& e) {
    throw Error(e.code(), video.name() + ": " + e.what());
  }
  const int T = config_.size_height;
  out.tile_size = T;
  out.num_frames = static_cast<int64_t>(out.frame_indices.size());
  const size_t tile_floats = static_cast<size_t>(3) * T * T;
  out.pixel_values.resize(tile_floats * out.frame_indices.size());
  const PixelNormalizer norm(config_.do_rescale, config_.rescale_factor, config_.do_normalize,
                             config_.image_mean, config_.image_std);
  const int threads = ResolveResizeThreads(options.num_threads);
  std::vector<uint8_t> resized(static_cast<size_t>(T) * T * 3);
  size_t slot = 0;
  video.ReadFrames(out.frame_indices, [&](int64_t, const Image& frame) {
    float* dst = out.pixel_values.data() + tile_floats * slot;
    if (!config_.do_resize) {
      // The reference keeps frames at their size; the vision tower only takes T x T.
      if (frame.width != T || frame.height != T)
        throw Error(ErrorCode::kUnsupported,
                    video.name() + ": do_resize=false needs frames of exactly " +
                        std::to_string(T) + "x" + std::to_string(T) + " (got " +
                        std::to_string(frame.width) + "x" + std::to_string(frame.height) + ")");
      norm.ToChw(frame.rgb.data(), T, T, static_cast<size_t>(T) * 3, dst);
    } else {
      ResizeBicubicAA(frame.rgb.data(), frame.width, frame.height, 3, resized.data(), T, T,
                      threads);
      norm.ToChw(resized.data(), T, T, static_cast<size_t>(T) * 3, dst);
    }
    ++slot;
  });
  if (slot != out.frame_indices.size()) {
    throw Error(ErrorCode::kInternal, video.name() + ": decoder delivered " + std::to_string(slot) +
                                          " of " + std::to_string(out.frame_indices.size()) +
                                          " frames");
  }
  return out;
}

}  // namespace plm
