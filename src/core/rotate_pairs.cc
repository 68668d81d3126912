#include "core/rotate_pairs.h"

#include "core/cpu_features.h"
#include "core/simd.h"

namespace plm {

void RotationTables(const float* cos, const float* sin, int64_t angles, float* cos2, float* sin2) {
  for (int64_t k = 0; k < angles; ++k) {
    cos2[2 * k] = cos2[2 * k + 1] = cos[k];
    sin2[2 * k] = -sin[k];
    sin2[2 * k + 1] = sin[k];
  }
}

namespace {

// (Not inlined into the AVX-512 function, where the compiler could fuse its products and sums.)
__attribute__((noinline)) void RotatePairsScalar(const float* u, const float* cos2,
                                                 const float* sin2, int64_t n, float* v) {
  for (int64_t i = 0; i < n; i += 2) {
    const float a = u[i], b = u[i + 1];
    v[i] = a * cos2[i] + b * sin2[i];
    v[i + 1] = b * cos2[i + 1] + a * sin2[i + 1];
  }
}

// 16 values per step: the pairs swapped by one in-lane permute; products and sum rounded
// separately (explicit rounding, so the compiler cannot fuse them), as the scalar loop does.
__attribute__((target("avx512f"))) void RotatePairsAvx512(const float* u, const float* cos2,
                                                          const float* sin2, int64_t n, float* v) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(u + i);
    const __m512 swapped = _mm512_permute_ps(x, 0xB1);  // (b, a) per pair
    const __m512 p = _mm512_mul_round_ps(x, _mm512_loadu_ps(cos2 + i), kRound);
    const __m512 q = _mm512_mul_round_ps(swapped, _mm512_loadu_ps(sin2 + i), kRound);
    _mm512_storeu_ps(v + i, _mm512_add_round_ps(p, q, kRound));
  }
  RotatePairsScalar(u + i, cos2 + i, sin2 + i, n - i, v + i);
}

}  // namespace

void RotatePairs(const float* u, const float* cos2, const float* sin2, int64_t n, float* v) {
  if (Cpu().avx512f) {
    RotatePairsAvx512(u, cos2, sin2, n, v);
  } else {
    RotatePairsScalar(u, cos2, sin2, n, v);
  }
}

}  // namespace plm
