// Helpers of the AVX2 kernels (core/gemv_avx2.cc, core/attention_avx2.cc): the target they are
// compiled for and horizontal reductions of 8 lanes.
#pragma once

#include <cstdint>

#include "core/simd.h"

// AVX2 with FMA and F16C: CpuFeatures::avx2_kernels().
#define PLM_AVX2 "avx2,fma,f16c"

namespace plm {

__attribute__((target(PLM_AVX2), always_inline)) inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

__attribute__((target(PLM_AVX2), always_inline)) inline int32_t HSum(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 1)));
}

__attribute__((target(PLM_AVX2), always_inline)) inline float HMax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

}  // namespace plm
