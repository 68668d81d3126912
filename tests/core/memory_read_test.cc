// ReadSum (the bandwidth probes' reader) sums every element exactly once with each instruction
// set it picks from (AVX-512, AVX2, plain) and with or without software prefetch, for lengths
// that are and are not multiples of its unrolled steps.
#include "core/memory_read.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/cpu_features.h"

namespace plm {
namespace {

TEST(MemoryRead, SumsEveryElementOnceOnEveryPath) {
  const CpuFeatures saved = Cpu();
  CpuFeatures avx2_only;
  avx2_only.avx2 = saved.avx2;
  avx2_only.fma = saved.fma;
  for (const CpuFeatures& f : {saved, avx2_only, CpuFeatures{}}) {
    SetCpuFeaturesForTesting(f);
    for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{127}, size_t{128},
                     size_t{129}, size_t{1000}, size_t{40961}}) {
      std::vector<float> v(n);
      double want = 0;
      for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<float>(i % 7);  // small integers: every order of summing is exact
        want += v[i];
      }
      for (bool prefetch : {false, true})
        EXPECT_EQ(ReadSum(v.data(), n, prefetch), static_cast<float>(want))
            << "n=" << n << " prefetch=" << prefetch << " avx512f=" << f.avx512f
            << " avx2=" << f.avx2;
    }
  }
  SetCpuFeaturesForTesting(saved);
}

}  // namespace
}  // namespace plm
