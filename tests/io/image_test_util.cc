#include "image_test_util.h"

#include <cmath>

#include "support/test_support.h"

namespace plm::test {

bool FindProcessorConfig(const std::string& fixtures, const std::string& proc, const Json& meta,
                         ImageProcessorConfig* config, std::string* source) {
  for (const std::string dir : {"models", "processors"}) {
    const std::string path = fixtures + "/" + dir + "/" + proc + "/processor_config.json";
    if (PathExists(path)) {
      *config = ImageProcessorConfig::Load(path);
      *source = path;
      return true;
    }
  }
  // No stored config: infer it from the fixture (documented in the README: e.g. plm-tiny-odd).
  int tile = 0;
  for (const auto& [name, entry] : meta.items()) {
    if (entry.is_object() && entry.contains("pixel_values_shape")) {
      tile = entry["pixel_values_shape"].back().get<int>();
      break;
    }
  }
  if (tile <= 0) return false;
  for (int m = 1; m <= 64; ++m) {
    ImageProcessorConfig c;
    c.tile_size = tile;
    c.size_height = c.size_width = tile;
    c.max_num_tiles = m;
    const ImageProcessor p(c);
    bool all = true;
    for (const auto& [name, entry] : meta.items()) {
      if (!entry.is_object() || !entry.contains("size_wh")) continue;
      const int64_t w = entry["size_wh"][0].get<int64_t>(), h = entry["size_wh"][1].get<int64_t>();
      // Tile counts of the as-loaded and the chat (EXIF-rotated) variants.
      if (p.CountTiles(w, h) != entry["pixel_values_shape"][1].get<int64_t>() &&
          p.CountTiles(h, w) != entry["pixel_values_shape"][1].get<int64_t>()) {
        all = false;
        break;
      }
    }
    if (all) {
      *config = c;
      *source = "inferred from the fixture: tile " + std::to_string(tile) + ", max_num_tiles " +
                std::to_string(m);
      return true;
    }
  }
  return false;
}

std::vector<float> Subsample(const std::vector<float>& pv, int64_t tiles, int tile, int stride) {
  const int n = (tile + stride - 1) / stride;
  std::vector<float> out;
  out.reserve(static_cast<size_t>(tiles) * 3 * n * n);
  for (int64_t t = 0; t < tiles; ++t) {
    for (int c = 0; c < 3; ++c) {
      const float* plane = pv.data() + (static_cast<size_t>(t) * 3 + c) * tile * tile;
      for (int y = 0; y < tile; y += stride) {
        for (int x = 0; x < tile; x += stride)
          out.push_back(plane[static_cast<size_t>(y) * tile + x]);
      }
    }
  }
  return out;
}

void TileChannelStats(const std::vector<float>& pv, int64_t tiles, int tile,
                      std::vector<double>* mean, std::vector<double>* std) {
  const size_t plane = static_cast<size_t>(tile) * tile;
  mean->clear();
  std->clear();
  for (int64_t t = 0; t < tiles; ++t) {
    for (int c = 0; c < 3; ++c) {
      const float* p = pv.data() + (static_cast<size_t>(t) * 3 + c) * plane;
      double s = 0;
      for (size_t i = 0; i < plane; ++i) s += p[i];
      const double m = s / static_cast<double>(plane);
      double v = 0;
      for (size_t i = 0; i < plane; ++i) v += (p[i] - m) * (p[i] - m);
      mean->push_back(m);
      std->push_back(std::sqrt(v / static_cast<double>(plane - 1)));
    }
  }
}

}  // namespace plm::test
