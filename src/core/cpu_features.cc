#include "core/cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace plm {

namespace {
CpuFeatures& Features() {
  static CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.intel = __builtin_cpu_is("intel");
    unsigned a = 0, b = 0, cx = 0, d = 0;
    if (__get_cpuid(1, &a, &b, &cx, &d)) c.f16c = (cx >> 29) & 1u;
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
      c.amx_bf16 = (d >> 22) & 1u;
      c.avx512fp16 = (d >> 23) & 1u;
    }
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512vnni = __builtin_cpu_supports("avx512vnni");
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    c.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
#endif
    // AVX512-FP16 only with the rest of AVX-512 (the OS state is checked by
    // __builtin_cpu_supports).
    c.avx512fp16 = c.avx512fp16 && c.avx512f && c.avx512bw && c.avx512vl;
    const char* env = std::getenv("PLM_CPU");
    const bool generic = env != nullptr && std::strcmp(env, "generic") == 0;
    if (generic || (env != nullptr && std::strcmp(env, "avx2") == 0)) {
      c.avx512f = c.avx512bw = c.avx512dq = c.avx512vl = c.avx512bf16 = c.avx512vnni = false;
      c.amx_bf16 = c.avx512fp16 = false;
    }
    if (generic) c.avx2 = c.fma = c.f16c = false;
    if (env != nullptr && std::strcmp(env, "no-fp16") == 0) c.avx512fp16 = false;
    return c;
  }();
  return f;
}
}  // namespace

const CpuFeatures& Cpu() {
  return Features();
}
const char* KernelSetName() {
  return Cpu().avx512_full() ? "avx512" : Cpu().avx2_kernels() ? "avx2" : "portable";
}

void SetCpuFeaturesForTesting(const CpuFeatures& f) {
  Features() = f;
}

}  // namespace plm
