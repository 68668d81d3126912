// LayerNormFast (reduced-precision paths) agrees with the double-accumulating reference LayerNorm:
// widths that are and are not multiples of 16/32, with and without bias, in place, on the
// AVX-512 and the portable path, and rows with a large common offset (no cancellation trouble).
#include "core/layer_norm_fast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/ops.h"
#include "support/test_support.h"

namespace plm {
namespace {

TEST(LayerNormFast, MatchesReference) {
  test::ForEachCpuPath([](bool native) {
    for (int64_t d : {1, 15, 16, 33, 64, 1024, 1536}) {
      for (bool bias : {true, false}) {
        const int64_t rows = 5;
        std::mt19937 rng(static_cast<uint32_t>(d));
        std::normal_distribution<float> n(0.0f, 1.0f);
        std::vector<float> x(static_cast<size_t>(rows * d)), w(d), b(d);
        for (auto& v : x) v = n(rng);
        for (int64_t j = 0; j < d; ++j) x[2 * d + j] += 300.0f;  // a row far from zero mean
        for (auto& v : w) v = 1.0f + 0.1f * n(rng);
        for (auto& v : b) v = 0.1f * n(rng);
        std::vector<float> want(x.size()), got(x.size()), inplace = x;
        LayerNorm(x.data(), w.data(), bias ? b.data() : nullptr, 1e-5f, want.data(), rows, d);
        LayerNormFast(x.data(), w.data(), bias ? b.data() : nullptr, 1e-5f, got.data(), rows, d);
        LayerNormFast(inplace.data(), w.data(), bias ? b.data() : nullptr, 1e-5f, inplace.data(),
                      rows, d);
        for (size_t i = 0; i < x.size(); ++i) {
          // float32 sums: ~2e-5 off on the row with mean 300 (bf16 rounding is ~4e-3).
          EXPECT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i])))
              << "native=" << native << " d=" << d << " bias=" << bias << " i=" << i;
          EXPECT_EQ(inplace[i], got[i]);
        }
      }
    }
  });
}

}  // namespace
}  // namespace plm
