#include "io/image_processor.h"

#include <sys/stat.h>

#include <cmath>
#include <string>

#include "core/mapped_file.h"
#include "io/resize_bicubic_aa.h"
#include "plm/error.h"

namespace plm {

std::array<double, 3> ReadNumberTriple(const Json& j, const std::string& key,
                                       const std::array<double, 3>& def, const std::string& what) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  const Json& v = j.at(key);
  std::array<double, 3> out = def;
  if (v.is_number()) {
    out.fill(v.get<double>());
  } else if (v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() &&
             v[2].is_number()) {
    for (int i = 0; i < 3; ++i) out[i] = v[i].get<double>();
  } else {
    throw Error(ErrorCode::kCorrupt, what + ": \"" + key + "\" must be a number or 3 numbers");
  }
  return out;
}

namespace {

void CheckRange(int64_t v, int64_t lo, int64_t hi, const std::string& key,
                const std::string& what) {
  if (v < lo || v > hi) {
    throw Error(ErrorCode::kCorrupt, what + ": \"" + key + "\" = " + std::to_string(v) +
                                         " is outside [" + std::to_string(lo) + ", " +
                                         std::to_string(hi) + "]");
  }
}

}  // namespace

ImageProcessorConfig ImageProcessorConfig::FromJson(const Json& j, const std::string& what) {
  if (!j.is_object()) throw Error(ErrorCode::kCorrupt, what + ": image processor is not an object");
  ImageProcessorConfig c;
  c.vision_input_type = JsonStringOr(j, "vision_input_type", c.vision_input_type, what);
  c.tile_size = static_cast<int>(JsonIntOr(j, "tile_size", c.tile_size, what));
  c.max_num_tiles = static_cast<int>(JsonIntOr(j, "max_num_tiles", c.max_num_tiles, what));
  if (j.contains("size") && j.at("size").is_object()) {
    c.size_height = static_cast<int>(JsonIntOr(j.at("size"), "height", c.tile_size, what));
    c.size_width = static_cast<int>(JsonIntOr(j.at("size"), "width", c.tile_size, what));
  } else {
    c.size_height = c.size_width = c.tile_size;
  }
  c.do_resize = JsonBoolOr(j, "do_resize", c.do_resize, what);
  c.do_rescale = JsonBoolOr(j, "do_rescale", c.do_rescale, what);
  c.do_normalize = JsonBoolOr(j, "do_normalize", c.do_normalize, what);
  c.do_convert_rgb = JsonBoolOr(j, "do_convert_rgb", c.do_convert_rgb, what);
  c.rescale_factor = JsonNumberOr(j, "rescale_factor", c.rescale_factor, what);
  c.image_mean = ReadNumberTriple(j, "image_mean", c.image_mean, what);
  c.image_std = ReadNumberTriple(j, "image_std", c.image_std, what);
  c.resample = static_cast<int>(JsonIntOr(j, "resample", c.resample, what));
  c.Check(ErrorCode::kCorrupt, what);
  return c;
}

void ImageProcessorConfig::Check(ErrorCode code, const std::string& what) const {
  if (tile_size < 1 || tile_size > 8192)
    throw Error(code,
                what + ": tile_size = " + std::to_string(tile_size) + " is outside [1, 8192]");
  if (max_num_tiles < 1 || max_num_tiles > ImageProcessor::kMaxTilesLimit)
    throw Error(code, what + ": max_num_tiles = " + std::to_string(max_num_tiles) +
                          " is outside [1, " + std::to_string(ImageProcessor::kMaxTilesLimit) +
                          "]");
  for (double s : image_std)
    if (!(s != 0.0) || !std::isfinite(s)) throw Error(code, what + ": \"image_std\" has a zero");
  for (double m : image_mean)
    if (!std::isfinite(m)) throw Error(code, what + ": \"image_mean\" is not finite");
  if (!(rescale_factor > 0) || !std::isfinite(rescale_factor))
    throw Error(code, what + ": rescale_factor must be a positive number");
  CheckResample(resample, what);
}

void CheckResample(int resample, const std::string& what) {
  if (resample != kResampleBicubic)
    throw Error(ErrorCode::kUnsupported,
                what + ": resample = " + std::to_string(resample) +
                    " is not supported (only 3, BICUBIC, the filter of every PerceptionLM "
                    "release; the reference's uint8 kernel is reproduced bit-exactly for it)");
}

ImageProcessorConfig ImageProcessorConfig::Load(const std::string& path) {
  std::string file = path;
  if (IsDirectory(path)) {
    file = path + "/processor_config.json";
    if (!IsRegularFile(file)) file = path + "/preprocessor_config.json";
    if (!IsRegularFile(file)) {
      throw Error(ErrorCode::kNotFound,
                  path + ": no processor_config.json or preprocessor_config.json");
    }
  }
  const Json j = ReadJsonFile(file);
  if (!j.is_object()) throw Error(ErrorCode::kCorrupt, file + ": not a JSON object");
  const bool nested = j.contains("image_processor");
  ImageProcessorConfig c = FromJson(nested ? j.at("image_processor") : j, file);
  c.patch_size = static_cast<int>(JsonIntOr(j, "patch_size", c.patch_size, file));
  c.pooling_ratio = static_cast<int>(JsonIntOr(j, "pooling_ratio", c.pooling_ratio, file));
  CheckRange(c.patch_size, 1, 1024, "patch_size", file);
  CheckRange(c.pooling_ratio, 1, 1024, "pooling_ratio", file);
  return c;
}

ImageProcessor::ImageProcessor(ImageProcessorConfig config) : config_(std::move(config)) {}

bool ImageProcessor::SingleTile(const ImageOptions& options) const {
  // do_resize=false: the reference keeps the image as it is, one "tile".
  return options.single_tile || config_.vision_input_type != "thumb+tile" || !config_.do_resize;
}

int ImageProcessor::MaxTiles(const ImageOptions& options) const {
  const int m = options.max_num_tiles.value_or(config_.max_num_tiles);
  if (m < 1 || m > kMaxTilesLimit) {
    throw Error(ErrorCode::kInvalidArgument, "max_num_tiles = " + std::to_string(m) +
                                                 " is outside [1, " +
                                                 std::to_string(kMaxTilesLimit) + "]");
  }
  return m;
}

TileGrid ImageProcessor::ChooseGrid(int64_t width, int64_t height, int max_tiles) const {
  return ChooseTileGrid(width, height, config_.tile_size, max_tiles);
}

int64_t ImageProcessor::CountTiles(int64_t width, int64_t height,
                                   const ImageOptions& options) const {
  if (SingleTile(options)) return 1;
  return 1 + ChooseGrid(width, height, MaxTiles(options)).count();
}

int64_t ImageProcessor::TokensPerTile() const {
  const int64_t side = config_.tile_size / config_.patch_size / config_.pooling_ratio;
  return side * side;
}

int64_t ImageProcessor::CountTokens(int64_t width, int64_t height,
                                    const ImageOptions& options) const {
  return CountTiles(width, height, options) * TokensPerTile();
}

ProcessedImage ImageProcessor::Preprocess(const Image& image, const ImageOptions& options) const {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    throw Error(ErrorCode::kInvalidArgument, "image processor: bad image " +
                                                 std::to_string(image.width) + "x" +
                                                 std::to_string(image.height) + " with " +
                                                 std::to_string(image.rgb.size()) + " bytes");
  }
  const int T = config_.tile_size;
  const int threads = ResolveResizeThreads(options.num_threads);
  const PixelNormalizer norm(config_.do_rescale, config_.rescale_factor, config_.do_normalize,
                             config_.image_mean, config_.image_std);
  ProcessedImage out;
  out.tile_size = T;
  const size_t tile_floats = static_cast<size_t>(3) * T * T;
  if (!config_.do_resize) {
    // The reference passes the image through at its own size; the vision tower only takes
    // T x T, so other sizes cannot go further.
    if (image.width != T || image.height != T)
      throw Error(ErrorCode::kUnsupported,
                  "do_resize=false needs images of exactly the tile size " + std::to_string(T) +
                      "x" + std::to_string(T) + " (got " + std::to_string(image.width) + "x" +
                      std::to_string(image.height) + ")");
    out.num_tiles = 1;
    out.pixel_values.resize(tile_floats);
    norm.ToChw(image.rgb.data(), T, T, static_cast<size_t>(T) * 3, out.pixel_values.data());
    return out;
  }
  const bool single = SingleTile(options);
  if (!single) out.grid = ChooseGrid(image.width, image.height, MaxTiles(options));
  out.num_tiles = single ? 1 : 1 + out.grid.count();
  out.pixel_values.resize(tile_floats * out.num_tiles);

  // Thumbnail: the whole image squashed to T x T (a copy when it already is T x T).
  std::vector<uint8_t> thumb(static_cast<size_t>(T) * T * 3);
  ResizeBicubicAA(image.rgb.data(), image.width, image.height, 3, thumb.data(), T, T, threads);
  norm.ToChw(thumb.data(), T, T, static_cast<size_t>(T) * 3, out.pixel_values.data());
  if (single) return out;

  // Canvas: the whole image squashed to (rows*T) x (cols*T), cut into row-major tiles.
  const int cw = out.grid.cols * T, ch = out.grid.rows * T;
  std::vector<uint8_t> canvas(static_cast<size_t>(cw) * ch * 3);
  ResizeBicubicAA(image.rgb.data(), image.width, image.height, 3, canvas.data(), cw, ch, threads);
  const size_t stride = static_cast<size_t>(cw) * 3;
  for (int r = 0; r < out.grid.rows; ++r) {
    for (int c = 0; c < out.grid.cols; ++c) {
      const uint8_t* src =
          canvas.data() + static_cast<size_t>(r) * T * stride + static_cast<size_t>(c) * T * 3;
      float* dst = out.pixel_values.data() + tile_floats * (1 + r * out.grid.cols + c);
      norm.ToChw(src, T, T, stride, dst);
    }
  }
  return out;
}

PixelNormalizer::PixelNormalizer(bool do_rescale, double rescale_factor, bool do_normalize,
                                 const std::array<double, 3>& mean,
                                 const std::array<double, 3>& std) {
  // The reference fuses rescale into normalise: torch.tensor(mean) * (1 / rescale_factor), a
  // float32 tensor times a scalar, so the product is formed in float32.
  const float inv = static_cast<float>(1.0 / rescale_factor);
  for (int c = 0; c < 3; ++c) {
    const bool fused = do_rescale && do_normalize;
    const float m = fused ? static_cast<float>(mean[c]) * inv : static_cast<float>(mean[c]);
    const float s = fused ? static_cast<float>(std[c]) * inv : static_cast<float>(std[c]);
    const float r = static_cast<float>(rescale_factor);
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v);
      float y = x;
      if (do_normalize) {
        y = (x - m) / s;
      } else if (do_rescale) {
        y = x * r;
      }
      lut_[c][v] = y;
    }
  }
}

void PixelNormalizer::ToChw(const uint8_t* rgb, int width, int height, size_t stride,
                            float* out) const {
  const size_t plane = static_cast<size_t>(width) * height;
  for (int y = 0; y < height; ++y) {
    const uint8_t* s = rgb + static_cast<size_t>(y) * stride;
    float* r = out + static_cast<size_t>(y) * width;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < width; ++x) {
      r[x] = lut_[0][s[3 * x]];
      g[x] = lut_[1][s[3 * x + 1]];
      b[x] = lut_[2][s[3 * x + 2]];
    }
  }
}

}  // namespace plm
