// Rotation of adjacent value pairs (the vision tower's 2D RoPE): for each pair (a, b) at 2k,
// 2k + 1 with angle k, (a cos - b sin, b cos + a sin). AVX-512 where available, bit-identical to
// the scalar loop (each product rounded, then one addition: no fused multiply-add), so the
// float32 reference path and the reduced-precision ones rotate the same way.
#pragma once

#include <cstdint>

namespace plm {

// Per-angle tables in the pairs' layout, n values each (n = 2 x angles): cos2 = (c0, c0, c1, c1,
// ...), sin2 = (-s0, s0, -s1, s1, ...).
void RotationTables(const float* cos, const float* sin, int64_t angles, float* cos2, float* sin2);

// v[i] = u[i] cos2[i] + u[i ^ 1] sin2[i] for i < n (n even; v may equal u).
void RotatePairs(const float* u, const float* cos2, const float* sin2, int64_t n, float* v);

}  // namespace plm
