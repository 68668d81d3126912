#include "core/layer_norm_fast.h"

#include <cmath>

#include "core/cpu_features.h"
#include "core/ops.h"
#include "core/simd.h"

namespace plm {

namespace {

inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

// Two passes over the row for the mean and the variance of the deviations (no cancellation),
// each with two independent accumulators; the normalisation in a third pass.
__attribute__((target("avx512f,fma"))) void LayerNormAvx512(const float* x, const float* w,
                                                            const float* b, float eps, float* y,
                                                            int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= d; j += 32) {
      s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + j));
      s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + j + 16));
    }
    for (; j < d; j += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(TailMask(d - j), xr + j));
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / static_cast<float>(d);
    const __m512 mv = _mm512_set1_ps(mean);
    __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
    for (j = 0; j + 32 <= d; j += 32) {
      const __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(xr + j), mv);
      const __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(xr + j + 16), mv);
      v0 = _mm512_fmadd_ps(t0, t0, v0);
      v1 = _mm512_fmadd_ps(t1, t1, v1);
    }
    for (; j < d; j += 16) {
      const __mmask16 m = TailMask(d - j);
      const __m512 t = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + j), mv);
      v0 = _mm512_fmadd_ps(t, t, v0);
    }
    const float var = _mm512_reduce_add_ps(_mm512_add_ps(v0, v1)) / static_cast<float>(d);
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
    for (j = 0; j < d; j += 16) {
      const __mmask16 m = TailMask(d - j);
      const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + j), mv), inv);
      const __m512 bias = b != nullptr ? _mm512_maskz_loadu_ps(m, b + j) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(yr + j, m, _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, w + j), bias));
    }
  }
}

}  // namespace

void LayerNormFast(const float* x, const float* w, const float* b, float eps, float* y,
                   int64_t rows, int64_t d) {
  if (Cpu().avx512f) {
    LayerNormAvx512(x, w, b, eps, y, rows, d);
  } else {
    LayerNorm(x, w, b, eps, y, rows, d);
  }
}

}  // namespace plm
