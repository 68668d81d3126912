// Choice of the tile grid for PerceptionLM's "thumb+tile" images (plm-spec.md §2.2-2.3).
#pragma once

#include <cstdint>
#include <vector>

namespace plm {

// A canvas of `cols` x `rows` tiles (the reference's (n_w, n_h)).
struct TileGrid {
  int cols = 1;
  int rows = 1;
  int count() const { return cols * rows; }
  bool operator==(const TileGrid&) const = default;
};

// Every arrangement of 1..max_num_tiles tiles, in the reference's candidate order: grouped by
// aspect ratio cols/rows in first-seen order while walking tile counts from max_num_tiles down to 1
// and, per count, widths in ascending order.
std::vector<TileGrid> CandidateTileGrids(int max_num_tiles);

// The grid the reference picks for a width x height image: the canvas that holds the image
// without downscaling and lets it grow most (later candidates win ties), else the closest aspect
// ratio (the image is downscaled). Throws kInvalidArgument for non-positive arguments.
TileGrid ChooseTileGrid(int64_t width, int64_t height, int tile_size, int max_num_tiles);

}  // namespace plm
