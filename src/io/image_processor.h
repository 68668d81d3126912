// PerceptionLM image preprocessing: thumbnail + tile grid, bit-exact with the reference
// (transformers' PerceptionLMImageProcessor on CPU; plm-spec.md §2.2-2.7).
//
// Output per image: [num_tiles, 3, T, T] float32, thumbnail first then tiles row-major. Both the
// thumbnail (T x T) and the tiling canvas (rows*T x cols*T) are aspect-squashing resizes of the
// original image with the exact uint8 antialiased bicubic kernel (resize_bicubic_aa.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/image.h"
#include "io/tile_grid.h"
#include "plm/error.h"

namespace plm {

// image_mean / image_std style keys: one number or three; missing or null keeps `def`. Throws
// kCorrupt naming `what` and the key otherwise (shared by the image and video processor configs).
std::array<double, 3> ReadNumberTriple(const Json& j, const std::string& key,
                                       const std::array<double, 3>& def, const std::string& what);

// The "image_processor" block of processor_config.json (or a flat preprocessor_config.json),
// plus the processor's patch_size and pooling_ratio.
struct ImageProcessorConfig {
  std::string vision_input_type = "thumb+tile";  // anything else: one squashed tile ("vanilla")
  int tile_size = 448;     // thumbnail and tile side; the HF code uses it, not `size`
  int max_num_tiles = 36;  // tiles besides the thumbnail
  int size_height = 448;   // `size`, kept for reference (equal to tile_size in every release)
  int size_width = 448;
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;
  bool do_convert_rgb = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
  int resample = 3;  // BICUBIC, the only filter supported (CheckResample)
  int patch_size = 14;
  int pooling_ratio = 2;

  // Throws `code` naming `what` and the field when a value is out of range (tile_size,
  // max_num_tiles, image_std zero, rescale_factor) or kUnsupported for another resample.
  void Check(ErrorCode code, const std::string& what) const;

  // Reads the image processor block; `what` names the source in errors (kCorrupt / kUnsupported).
  static ImageProcessorConfig FromJson(const Json& image_processor, const std::string& what);
  // `path` is a model folder (processor_config.json, else preprocessor_config.json) or one of
  // those files. Missing keys keep the PerceptionLM-1B/3B defaults above.
  static ImageProcessorConfig Load(const std::string& path);
};

// PIL's BICUBIC, the `resample` value of every PerceptionLM processor config.
constexpr int kResampleBicubic = 3;
// Throws kUnsupported naming `what` unless `resample` is kResampleBicubic.
void CheckResample(int resample, const std::string& what);

// Per-request overrides.
struct ImageOptions {
  // Fewer tiles = fewer tokens and much less compute. 1..kMaxTilesLimit.
  std::optional<int> max_num_tiles;
  // Forces the single-tile ("vanilla") mode: just the squashed T x T image.
  bool single_tile = false;
  int num_threads = 0;  // resize threads; <= 0: one per hardware thread
};

struct ProcessedImage {
  int64_t num_tiles = 0;  // 1 (thumbnail / single tile) + grid.count() in thumb+tile mode
  int tile_size = 0;
  TileGrid grid;                    // {1, 1} and unused in single-tile mode
  std::vector<float> pixel_values;  // [num_tiles, 3, T, T]
};

class ImageProcessor {
 public:
  static constexpr int kMaxTilesLimit = 256;

  explicit ImageProcessor(ImageProcessorConfig config);
  const ImageProcessorConfig& config() const { return config_; }

  ProcessedImage Preprocess(const Image& image, const ImageOptions& options = {}) const;

  // The grid for a width x height image (after EXIF orientation) and `max_tiles`.
  TileGrid ChooseGrid(int64_t width, int64_t height, int max_tiles) const;
  // Tiles, including the thumbnail, that Preprocess will produce; no pixel work.
  int64_t CountTiles(int64_t width, int64_t height, const ImageOptions& options = {}) const;
  // Image tokens per tile after the projector's pooling: (T / patch / pooling)^2.
  int64_t TokensPerTile() const;
  // CountTiles * TokensPerTile: how many <|image|> tokens the request will cost.
  int64_t CountTokens(int64_t width, int64_t height, const ImageOptions& options = {}) const;

 private:
  bool SingleTile(const ImageOptions& options) const;
  int MaxTiles(const ImageOptions& options) const;

  ImageProcessorConfig config_;
};

// Rescale + normalise of uint8 samples exactly as the reference computes them in float32:
// (x - mean/rescale) / (std/rescale) when both are on (plm-spec.md §2.6).
class PixelNormalizer {
 public:
  PixelNormalizer(bool do_rescale, double rescale_factor, bool do_normalize,
                  const std::array<double, 3>& mean, const std::array<double, 3>& std);
  // Writes the HWC uint8 `rgb` region (width x height, row stride `stride` bytes) as CHW float.
  void ToChw(const uint8_t* rgb, int width, int height, size_t stride, float* out) const;

 private:
  std::array<std::array<float, 256>, 3> lut_;
};

}  // namespace plm
