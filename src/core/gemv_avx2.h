// Decode-sized GEMMs (m <= kSmallM activation rows) for CPUs with AVX2, FMA and F16C but without
// the AVX-512 kernels: most desktop and laptop CPUs (Intel Core since Alder Lake, AMD Zen 1-3).
// They read the weights' plain row layouts (the blocked layouts need AVX-512): bf16 four weight
// rows per tile so that each activation load serves four rows, q8 and q4 one row after the other
// so that the weights are one sequential stream (their rows are short: 1-2 KB at k = 2048).
// Without them such CPUs converted every weight panel to f32 for BLAS at each decode step
// (docs/PERFORMANCE.md "Session 21": 0.5-1 token/s at the 1B shape).
#pragma once

#include <cstdint>

#include "core/lowp_gemm.h"

namespace plm {

// y[i * n + r] = sum_j xr[i * k + j] * w[r * k + j] for weight rows [r0, r1): xr holds m rows
// of float32 activations (rounded to bf16 values by the caller, as the other bf16 paths do), w
// bf16 rows [n, k]. Any k.
void GemvBf16Avx2(const float* xr, const uint16_t* w, float* y, int64_t m, int64_t n, int64_t k,
                  int64_t r0, int64_t r1);

// y[i * n + r] = xs[i] * scale[r] * sum_j xq[i * k + j] * q[r * k + j] for rows [r0, r1) of
// the plain q8 rows (w.q): exact int32 sums (vpmaddubsw on |w| and x with w's sign) for any
// int8 weights and activations in [-127, 127] (as QuantizeRows gives). Any k.
void GemvQ8Avx2(const int8_t* xq, const float* xs, const Q8Matrix& w, float* y, int64_t m,
                int64_t r0, int64_t r1);

// y[i * n + r] = xs[i] * sum_b scale[r, b] * (sum over block b of xq * (nibble - 8)) for rows
// [r0, r1) of the plain q4 rows (w.q, w.scale); nsum [m, k / 32] holds -8 * each block's sum of
// xq (the zero point, removed once per block and row). k % 64 == 0.
void GemvQ4Avx2(const int8_t* xq, const float* xs, const float* nsum, const Q4Matrix& w, float* y,
                int64_t m, int64_t r0, int64_t r1);

}  // namespace plm
