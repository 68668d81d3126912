#include "core/rms_norm_fast.h"

#include <cmath>

#include "core/cpu_features.h"
#include "core/ops.h"
#include "core/simd.h"

namespace plm {

namespace {

__attribute__((target("avx512f,avx512vl,fma"))) void RmsNormAvx512(const float* x, const float* w,
                                                                   float eps, float* y,
                                                                   int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    __m512d s[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd()};
    int64_t j = 0;
    for (; j + 32 <= d; j += 32)
      for (int a = 0; a < 4; ++a) {
        const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 8 * a));
        s[a] = _mm512_fmadd_pd(v, v, s[a]);
      }
    for (; j < d; j += 8) {
      const int64_t left = d - j;
      const __mmask8 m =
          left >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << left) - 1u);
      const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, xr + j));
      s[0] = _mm512_fmadd_pd(v, v, s[0]);
    }
    const double ss =
        _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s[0], s[1]), _mm512_add_pd(s[2], s[3])));
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    const __m512 iv = _mm512_set1_ps(inv);
    for (j = 0; j < d; j += 16) {
      const int64_t left = d - j;
      const __mmask16 m =
          left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
      // w * (x * inv), in that order, as the reference.
      const __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + j), iv);
      _mm512_mask_storeu_ps(yr + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + j), t));
    }
  }
}

}  // namespace

void RmsNormFast(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t d) {
  if (Cpu().avx512f && Cpu().avx512vl) {
    RmsNormAvx512(x, w, eps, y, rows, d);
  } else {
    RmsNorm(x, w, eps, y, rows, d);
  }
}

}  // namespace plm
