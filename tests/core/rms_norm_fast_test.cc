// RmsNormFast (reduced-precision paths) gives the reference RmsNorm's values: the same double sum
// of squares in another order and the same float normalisation, so at most one float rounding
// apart (in practice equal); widths that are and are not multiples of 8/16/32, in place, rows of
// very different scales, on the AVX-512 and the portable path.
#include "core/rms_norm_fast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/ops.h"
#include "support/test_support.h"

namespace plm {
namespace {

TEST(RmsNormFast, MatchesReference) {
  test::ForEachCpuPath([](bool native) {
    for (int64_t d : {1, 7, 8, 15, 33, 64, 100, 2048, 3072}) {
      const int64_t rows = 4;
      std::mt19937 rng(static_cast<uint32_t>(d));
      std::normal_distribution<float> n(0.0f, 1.0f);
      std::vector<float> x(static_cast<size_t>(rows * d)), w(d);
      for (auto& v : x) v = n(rng);
      for (int64_t j = 0; j < d; ++j) {
        x[1 * d + j] *= 1e4f;   // a large row
        x[2 * d + j] *= 1e-4f;  // a row small against eps
      }
      for (auto& v : w) v = 1.0f + 0.1f * n(rng);
      std::vector<float> want(x.size()), got(x.size()), inplace = x;
      RmsNorm(x.data(), w.data(), 1e-5f, want.data(), rows, d);
      RmsNormFast(x.data(), w.data(), 1e-5f, got.data(), rows, d);
      RmsNormFast(inplace.data(), w.data(), 1e-5f, inplace.data(), rows, d);
      int differ = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_NEAR(got[i], want[i], 2.5e-7f * std::fabs(want[i]))
            << "native=" << native << " d=" << d << " i=" << i;
        differ += got[i] != want[i];
        EXPECT_EQ(inplace[i], got[i]);
      }
      if (!native) {
        EXPECT_EQ(differ, 0) << "d=" << d;  // the portable path is the reference
      }
    }
  });
}

}  // namespace
}  // namespace plm
