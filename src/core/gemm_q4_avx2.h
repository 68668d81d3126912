// q4 GEMMs of many rows (prompts, vision tiles) for CPUs with AVX2 but without the AVX-512
// kernels. On such CPUs int8 products are no faster than f32 FMAs in general (AMD Zen 2: one
// integer-multiply pipe, docs/PERFORMANCE.md "Session 22"), but 4-bit weights leave room:
// vpmaddubsw of the unsigned nibbles (0..15) by int8 activations gives pairs of at most
// 2 * 15 * 127, so a 32-value block's eight 4-input groups are summed in int16 before one
// vpmaddwd — about 28 products per multiply-pipe cycle against 16 for f32 FMAs.
#pragma once

#include <cstdint>

#include "core/lowp_gemm.h"

namespace plm {

// y[i * n + j] = xs[i] * sum_b scale[j, b] * (sum over block b of xq[i, t] * (nibble[j, t] - 8))
// for all m rows and outputs [j0, j1) of w's plain q4 rows (j0 a multiple of 16): xq int8 rows
// [m, k], xs their scales, nsum [m, k / 32] -8 times each block's sum of xq (as the AVX2 decode
// kernels take them). One thread's share: callers split [0, n) into ranges of 16 outputs.
void GemmQ4RowsAvx2(const int8_t* xq, const float* xs, const float* nsum, const Q4Matrix& w,
                    float* y, int64_t m, int64_t j0, int64_t j1);

}  // namespace plm
