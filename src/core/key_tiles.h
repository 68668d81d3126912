// The layout of bf16 keys in the KV cache: tiles of 32 positions, dimension pairs interleaved.
#pragma once

#include <cstdint>
#include <vector>

namespace plm {

// Positions per key tile. A tile holds [head_dim / 2][32][2] bf16 values: for each pair of
// dimensions (2c, 2c + 1), the 32 positions' two values side by side. One 64-byte load then
// gives 16 positions x one dimension pair, so decode scores come out 16 keys per vector — as
// f32 FMAs with a broadcast query value (keys widened by a shift or a mask) or as vdpbf16ps
// with a broadcast query pair — with no sums across lanes, and the many-query kernel's own
// packing of K is this same layout. head_dim must be even.
constexpr int64_t kKeyTile = 32;

// Offset of position j's dimension d from the start of a head's keys.
inline int64_t KeyTileIndex(int64_t j, int64_t d, int64_t hd) {
  return (j / kKeyTile) * kKeyTile * hd + (d / 2) * (2 * kKeyTile) + (j % kKeyTile) * 2 + (d % 2);
}

// Positions rounded up to whole tiles.
inline int64_t KeyTilePositions(int64_t n) {
  return (n + kKeyTile - 1) / kKeyTile * kKeyTile;
}

// Keys of nk positions in rows [nk][hd] -> tiles (KeyTilePositions(nk) * hd values; the last
// tile's unused positions are zero). For tests and benchmarks that build a cache by hand.
inline std::vector<uint16_t> ToKeyTiles(const uint16_t* rows, int64_t nk, int64_t hd) {
  std::vector<uint16_t> tiles(static_cast<size_t>(KeyTilePositions(nk) * hd), 0);
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t d = 0; d < hd; ++d) tiles[KeyTileIndex(j, d, hd)] = rows[j * hd + d];
  return tiles;
}

}  // namespace plm
