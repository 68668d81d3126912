// The OpenBLAS kernel set plm requests when OpenBLAS's own choice is older than the CPU.
#include "core/blas_core.h"

#include <gtest/gtest.h>

#include <string>

namespace plm {
namespace {

TEST(BlasCore, UpgradesPreAvx2ChoicesOnNewerCpus) {
  CpuFeatures avx512;
  avx512.avx2 = avx512.fma = true;
  avx512.avx512f = avx512.avx512bw = avx512.avx512dq = avx512.avx512vl = true;
  CpuFeatures avx2;
  avx2.avx2 = avx2.fma = true;
  const CpuFeatures sse;
  // OpenBLAS 0.3.21 on a Xeon it does not know: its SSE3 kernels.
  EXPECT_EQ(std::string(BetterOpenBlasCore("Prescott", avx512)), "SkylakeX");
  EXPECT_EQ(std::string(BetterOpenBlasCore("nehalem", avx512)), "SkylakeX");
  EXPECT_EQ(std::string(BetterOpenBlasCore("Sandybridge", avx2)), "Haswell");
  // Fitting choices stay: AVX2 and AVX-512 kernel sets, other vendors', old CPUs, no answer.
  EXPECT_EQ(BetterOpenBlasCore("Haswell", avx512), nullptr);
  EXPECT_EQ(BetterOpenBlasCore("SkylakeX", avx512), nullptr);
  EXPECT_EQ(BetterOpenBlasCore("Cooperlake", avx512), nullptr);
  EXPECT_EQ(BetterOpenBlasCore("Zen", avx512), nullptr);
  EXPECT_EQ(BetterOpenBlasCore("Prescott", sse), nullptr);
  EXPECT_EQ(BetterOpenBlasCore(nullptr, avx512), nullptr);
}

TEST(BlasCore, ReportsTheLoadedChoice) {
  const char* name = OpenBlasCoreName();
  ASSERT_NE(name, nullptr);
  EXPECT_FALSE(std::string(name).empty());
}

}  // namespace
}  // namespace plm
