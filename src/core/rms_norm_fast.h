// RMSNorm for the reduced-precision paths. The reference RmsNorm in ops.h sums the squares in
// double one element at a time: a chain of dependent additions (~2 µs per 2048-wide row) that
// cost a 1B decode step ~0.5 % and prefill ~1 ms per norm at 512 tokens. This one keeps the
// double-precision sum, in 8-lane vectors with four accumulators, and the reference's float
// normalisation, so it differs from RmsNorm only by the order of the double additions.
#pragma once

#include <cstdint>

namespace plm {

// y = w * (x * inv_rms) per row of d values; x == y allowed.
void RmsNormFast(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t d);

}  // namespace plm
