// Run-time CPU feature detection: optimised kernels are compiled with per-function target
// attributes and chosen here, so the default build still runs on any x86-64.
#pragma once

namespace plm {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512bf16 = false, avx512vnni = false;
  bool intel = false;  // the vendor: memory-stream tuning differs (core/stream_prefetch.h)
  // AVX-512 F/BW/VL + BF16 + VNNI: the fast bf16 and int8 kernels.
  bool avx512_full() const {
    return avx512f && avx512bw && avx512dq && avx512vl && avx512bf16 && avx512vnni;
  }
};

// Detected once. Setting PLM_CPU=generic in the environment disables the AVX-512 kernels (to test
// the fallback path on a machine that has them).
const CpuFeatures& Cpu();
// Tests only: overrides the detected features (e.g. to run the portable fallbacks).
void SetCpuFeaturesForTesting(const CpuFeatures& f);

}  // namespace plm
