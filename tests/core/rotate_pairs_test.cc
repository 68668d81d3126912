// RotatePairs (the vision tower's RoPE) gives, bit for bit, the rotation the float32 reference
// computes — (a cos - b sin, b cos + a sin) with each product rounded — on the AVX-512 and the
// portable path, for lengths with and without a tail past 16 values, in place too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/rotate_pairs.h"

namespace plm {
namespace {

TEST(RotatePairs, BitIdenticalToTheReferenceRotation) {
  const CpuFeatures saved = Cpu();
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (bool portable : {false, true}) {
    CpuFeatures f = saved;
    if (portable) f.avx512f = false;
    SetCpuFeaturesForTesting(f);
    for (int64_t n : {2, 16, 32, 64, 72, 130}) {
      std::vector<float> u(static_cast<size_t>(n)), cs(static_cast<size_t>(n / 2)), sn(cs.size());
      for (float& x : u) x = dist(rng);
      for (size_t k = 0; k < cs.size(); ++k) {
        const double theta = 0.37 * static_cast<double>(k) + dist(rng);
        cs[k] = static_cast<float>(std::cos(theta));
        sn[k] = static_cast<float>(std::sin(theta));
      }
      std::vector<float> want(u.size());
      for (int64_t k = 0; k < n / 2; ++k) {
        const float a = u[2 * k], b = u[2 * k + 1];
        volatile float ac = a * cs[k], bs = b * sn[k], bc = b * cs[k], as = a * sn[k];
        want[2 * k] = ac - bs;
        want[2 * k + 1] = bc + as;
      }
      std::vector<float> cos2(u.size()), sin2(u.size()), got(u.size());
      RotationTables(cs.data(), sn.data(), n / 2, cos2.data(), sin2.data());
      RotatePairs(u.data(), cos2.data(), sin2.data(), n, got.data());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
          << "n=" << n << " portable=" << portable;
      RotatePairs(u.data(), cos2.data(), sin2.data(), n, u.data());  // in place
      EXPECT_EQ(0, std::memcmp(u.data(), want.data(), want.size() * sizeof(float)))
          << "in place, n=" << n << " portable=" << portable;
    }
  }
  SetCpuFeaturesForTesting(saved);
}

}  // namespace
}  // namespace plm
