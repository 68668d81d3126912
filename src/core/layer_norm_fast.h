// LayerNorm for the reduced-precision paths: 16-lane float32 sums (the reference LayerNorm in
// ops.h accumulates in double one element at a time, which dominated the vision tower's norms).
#pragma once

#include <cstdint>

namespace plm {

// y = (x - mean) / sqrt(var + eps) * w + b per row of d values (b may be null); x == y allowed.
void LayerNormFast(const float* x, const float* w, const float* b, float eps, float* y,
                   int64_t rows, int64_t d);

}  // namespace plm
