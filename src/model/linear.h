// A PyTorch-style Linear layer y = x W^T + b over rows of activations.
//
// The reference path keeps W in float32 (used in place from the mapping when the checkpoint is
// float32, converted once otherwise); faster weight formats
// (bf16, int8, 4-bit) plug in behind the same Forward.
#pragma once

#include <cstdint>
#include <vector>

#include "io/safetensors.h"
#include "model/f32_weights.h"

namespace plm {

class Linear {
 public:
  Linear() = default;
  // weight: [out, in]; bias: [out] or null.
  Linear(const TensorView& weight, const TensorView* bias);

  // y[rows, out] = x[rows, in] W^T + b.
  void Forward(const float* x, int64_t rows, float* y) const;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  const float* weight() const { return w_.data(); }

 private:
  int64_t in_ = 0, out_ = 0;
  F32Weights w_, b_;
};

}  // namespace plm
