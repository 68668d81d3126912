#include "core/memory_read.h"

#include <immintrin.h>

#include "core/cpu_features.h"

namespace plm {

namespace {

// Eight independent accumulators; with kPrefetch, lines 8 KiB ahead are requested into L2.
template <bool kPrefetch>
__attribute__((target("avx512f"))) float SumAvx512(const float* b, size_t n) {
  __m512 a[8];
  for (auto& x : a) x = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    if constexpr (kPrefetch)
      for (int j = 0; j < 8; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(b + i) + 8192 + 64 * j, _MM_HINT_T1);
    for (int j = 0; j < 8; ++j) a[j] = _mm512_add_ps(a[j], _mm512_loadu_ps(b + i + 16 * j));
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  float t[16];
  _mm512_storeu_ps(t, a[0]);
  float s = 0;
  for (float v : t) s += v;
  for (; i < n; ++i) s += b[i];
  return s;
}

template <bool kPrefetch>
__attribute__((target("avx2"))) float SumAvx2(const float* b, size_t n) {
  __m256 a[8];
  for (auto& x : a) x = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    if constexpr (kPrefetch)
      for (int j = 0; j < 4; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(b + i) + 8192 + 64 * j, _MM_HINT_T1);
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_loadu_ps(b + i + 8 * j));
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  float t[8];
  _mm256_storeu_ps(t, a[0]);
  float s = 0;
  for (float v : t) s += v;
  for (; i < n; ++i) s += b[i];
  return s;
}

float SumPlain(const float* b, size_t n) {
  float acc[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += b[i + j];
  float s = 0;
  for (float a : acc) s += a;
  for (; i < n; ++i) s += b[i];
  return s;
}

}  // namespace

float ReadSum(const float* b, size_t n, bool prefetch) {
  const CpuFeatures& cpu = Cpu();
  if (cpu.avx512f) return prefetch ? SumAvx512<true>(b, n) : SumAvx512<false>(b, n);
  if (cpu.avx2) return prefetch ? SumAvx2<true>(b, n) : SumAvx2<false>(b, n);
  return SumPlain(b, n);
}

}  // namespace plm
