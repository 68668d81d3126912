// Tile-grid choice: the spec's test vectors (plm-spec.md §2.3) and the candidate order.
#include <gtest/gtest.h>

#include "io/tile_grid.h"
#include "plm/error.h"

namespace plm {
namespace {

TEST(TileGrid, SpecVectors) {
  struct V {
    int w, h, max_tiles, cols, rows;
  };
  const V vectors[] = {
      {500, 450, 4, 2, 2},    {448, 448, 36, 6, 6},   {100, 100, 36, 6, 6},
      {500, 300, 36, 7, 5},   {640, 480, 36, 7, 5},   {1000, 200, 36, 12, 3},
      {800, 300, 36, 9, 4},   {300, 800, 36, 4, 9},   {1920, 1080, 36, 8, 4},
      {1080, 1920, 36, 4, 8}, {3000, 3000, 36, 6, 6}, {4000, 3000, 36, 4, 3},
  };
  for (const V& v : vectors) {
    const TileGrid g = ChooseTileGrid(v.w, v.h, 448, v.max_tiles);
    EXPECT_EQ(g, (TileGrid{v.cols, v.rows}))
        << v.w << "x" << v.h << " M=" << v.max_tiles << " got " << g.cols << "x" << g.rows;
  }
}

TEST(TileGrid, CandidateOrderForFive) {
  // The ratio map of the HF docstring: 0.2:[(1,5)], 5:[(5,1)], 0.25:[(1,4)], 1:[(2,2),(1,1)],
  // 4:[(4,1)], 1/3:[(1,3)], 3:[(3,1)], 0.5:[(1,2)], 2:[(2,1)].
  const std::vector<TileGrid> want = {{1, 5}, {5, 1}, {1, 4}, {2, 2}, {1, 1},
                                      {4, 1}, {1, 3}, {3, 1}, {1, 2}, {2, 1}};
  EXPECT_EQ(CandidateTileGrids(5), want);
}

TEST(TileGrid, AlwaysWithinMaxTiles) {
  for (int m = 1; m <= 40; m += 3) {
    for (int w : {1, 7, 100, 448, 1000, 5000, 30000}) {
      for (int h : {1, 13, 300, 448, 2000, 9000}) {
        const TileGrid g = ChooseTileGrid(w, h, 448, m);
        ASSERT_GE(g.count(), 1);
        ASSERT_LE(g.count(), m) << w << "x" << h << " M=" << m;
      }
    }
  }
  EXPECT_THROW(ChooseTileGrid(0, 5, 448, 4), Error);
  EXPECT_THROW(ChooseTileGrid(5, 5, 448, 0), Error);
}

}  // namespace
}  // namespace plm
