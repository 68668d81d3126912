// GEMMs of many rows (prompts, vision tiles) where the CPU has no AVX-512 kernels (the AVX2 and
// portable paths; q4 on AVX2 has its own kernel, core/gemm_q4_avx2.h): panels of W converted to f32
// on the OpenMP team and multiplied by oneDNN's f32 matmul on the same team. On AMD Zen 2 (AVX2,
// one integer-multiply pipe) int8 products are no faster than f32 FMAs, and f32 GEMMs run near the
// FMA peak (150-165 GFLOP/s on 2 cores), so the weights are dequantized (about twice as fast for q8
// and q4 as the int8 values through f32 BLAS with a serial rescaling pass, docs/PERFORMANCE.md,
// session 22). The activations are rounded as the decode kernels round them (bf16; int8 per row for
// q8 and q4), so a row's result does not depend on the number of rows in the call.
#pragma once

#include <cstdint>

#include "core/lowp_gemm.h"

namespace plm {

// Rows [r0, r1) of W as f32 [r1 - r0][k]: bf16 widened (exact), q8 as q * scale (one rounding),
// q4 as (nibble - 8) * block scale (exact: a 4-bit integer times an f16 value).
void DequantizeBf16Rows(const uint16_t* w, int64_t k, int64_t r0, int64_t r1, float* out);
void DequantizeQ8Rows(const Q8Matrix& w, int64_t r0, int64_t r1, float* out);
void DequantizeQ4Rows(const Q4Matrix& w, int64_t r0, int64_t r1, float* out);

// y = x W^T (+ bias, epilogue) through f32 panels of W.
void GemmBf16ViaF32(const float* x, const uint16_t* w, const float* bias, float* y, int64_t m,
                    int64_t n, int64_t k);
void GemmQ8ViaF32(const float* x, const Q8Matrix& w, const float* bias, float* y, int64_t m,
                  const GemmEpilogue& ep);
void GemmQ4ViaF32(const float* x, const Q4Matrix& w, const float* bias, float* y, int64_t m,
                  const GemmEpilogue& ep);

}  // namespace plm
