// Run-time CPU feature detection: optimised kernels are compiled with per-function target
// attributes and chosen here, so the default build still runs on any x86-64.
#pragma once

namespace plm {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512bf16 = false, avx512vnni = false;
  bool intel = false;     // the vendor: memory-stream tuning differs (core/stream_prefetch.h)
  bool amx_bf16 = false;  // AMX tiles for bf16 (oneDNN uses them for bf16 GEMMs)
  // AVX512-FP16 (Intel Sapphire Rapids and later): many-query attention in fp16 FMAs, twice the
  // multiply-adds per instruction of f32 (core/attention.cc).
  bool avx512fp16 = false;
  // bf16 GEMMs through f32 FMAs on weights widened per panel: on Intel without AMX vdpbf16ps
  // retires half the multiply-adds of FMA (attention_bench BM_DotProductThroughput).
  bool bf16_gemm_via_f32() const { return intel && !amx_bf16 && avx512_full(); }
  // AVX2 + FMA + F16C: the decode kernels for CPUs without the AVX-512 ones (core/gemv_avx2.h).
  bool avx2_kernels() const { return avx2 && fma && f16c && !avx512_full(); }
  // AVX-512 F/BW/VL + BF16 + VNNI: the fast bf16 and int8 kernels.
  bool avx512_full() const {
    return avx512f && avx512bw && avx512dq && avx512vl && avx512bf16 && avx512vnni;
  }
};

// Detected once. Setting PLM_CPU in the environment turns kernels off, to test the fallbacks on a
// machine that has more: PLM_CPU=avx2 disables the AVX-512 kernels (as on a CPU with AVX2 only),
// PLM_CPU=generic the AVX2 ones too (portable code only), PLM_CPU=no-fp16 only the AVX512-FP16
// ones.
const CpuFeatures& Cpu();
// The kernel set this CPU runs, for reports: "avx512" (avx512_full), "avx2" (avx2_kernels), or
// "portable".
const char* KernelSetName();
// Tests only: overrides the detected features (e.g. to run the portable fallbacks).
void SetCpuFeaturesForTesting(const CpuFeatures& f);

}  // namespace plm
