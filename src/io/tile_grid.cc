#include "io/tile_grid.h"

#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include "plm/error.h"

namespace plm {

namespace {

// Aspect ratio (exact IEEE division; equal rationals give identical doubles) -> arrangements,
// in insertion order.
using RatioMap = std::vector<std::pair<double, std::vector<TileGrid>>>;

RatioMap BuildRatioMap(int max_num_tiles) {
  RatioMap map;
  for (int chunk = max_num_tiles; chunk >= 1; --chunk) {
    for (int x = 1; x <= chunk; ++x) {
      if (chunk % x != 0) continue;
      const TileGrid g{x, chunk / x};
      const double key = static_cast<double>(g.cols) / static_cast<double>(g.rows);
      bool found = false;
      for (auto& [k, list] : map) {
        if (k == key) {
          list.push_back(g);
          found = true;
          break;
        }
      }
      if (!found) map.push_back({key, {g}});
    }
  }
  return map;
}

struct FittedSize {
  double w, h;
};

// The reference's _get_image_height_width: one side stays unrounded, the other is floored.
FittedSize FitInto(double w, double h, double canvas_w, double canvas_h) {
  const double s = w / h;
  const double rf = std::min(canvas_w / w, canvas_h / h);
  if (s > 1) {
    const double new_w = rf * w;
    return {new_w, std::floor(new_w / s)};
  }
  const double new_h = rf * h;
  return {std::floor(new_h * s), new_h};
}

std::optional<TileGrid> FitImageToCanvas(const RatioMap& map, double w, double h, int tile) {
  const double scale = w / h;
  std::optional<TileGrid> best;
  FittedSize best_wh{0, 0};
  for (const auto& [key, list] : map) {
    for (const TileGrid& g : list) {
      const double cw = static_cast<double>(g.cols) * tile, ch = static_cast<double>(g.rows) * tile;
      if (cw < w || ch < h) continue;
      const FittedSize wh = FitInto(w, h, cw, ch);
      if (!best || (scale < 1 && wh.w >= best_wh.w) || (scale >= 1 && wh.h >= best_wh.h)) {
        best = g;
        best_wh = wh;
      }
    }
  }
  return best;
}

TileGrid ClosestAspectRatio(const RatioMap& map, double w, double h) {
  const double t = w / h;
  const std::vector<TileGrid>* best = nullptr;
  double best_diff = 0;
  for (const auto& [key, list] : map) {
    double diff;
    if (t >= 1) {
      if (key > t) continue;
      diff = std::fabs(key - t);
    } else {
      if (key <= t) continue;
      diff = std::fabs(1 / key - 1 / t);
    }
    if (best == nullptr || diff < best_diff) {
      best = &list;
      best_diff = diff;
    }
  }
  TileGrid out = best->front();
  for (const TileGrid& g : *best) {
    if (t >= 1 ? g.cols > out.cols : g.rows > out.rows) out = g;
  }
  return out;
}

}  // namespace

std::vector<TileGrid> CandidateTileGrids(int max_num_tiles) {
  std::vector<TileGrid> out;
  for (const auto& [key, list] : BuildRatioMap(max_num_tiles)) {
    out.insert(out.end(), list.begin(), list.end());
  }
  return out;
}

TileGrid ChooseTileGrid(int64_t width, int64_t height, int tile_size, int max_num_tiles) {
  if (width <= 0 || height <= 0 || tile_size <= 0 || max_num_tiles <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "tile grid: bad arguments " + std::to_string(width) +
                                                 "x" + std::to_string(height) + ", tile " +
                                                 std::to_string(tile_size) + ", max tiles " +
                                                 std::to_string(max_num_tiles));
  }
  const RatioMap map = BuildRatioMap(max_num_tiles);
  const double w = static_cast<double>(width), h = static_cast<double>(height);
  if (auto g = FitImageToCanvas(map, w, h, tile_size)) return *g;
  // No canvas with at most max_num_tiles tiles holds the image: it will be downscaled.
  return ClosestAspectRatio(map, w, h);
}

}  // namespace plm
