#include "model/linear.h"

#include "core/ops.h"

namespace plm {

Linear::Linear(const TensorView& weight, const TensorView* bias)
    : in_(weight.shape.at(1)), out_(weight.shape.at(0)), w_(weight) {
  if (bias != nullptr) b_ = F32Weights(*bias);
}

void Linear::Forward(const float* x, int64_t rows, float* y) const {
  GemmF32(x, w_.data(), b_.empty() ? nullptr : b_.data(), y, rows, out_, in_);
}

}  // namespace plm
