#include "model/f32_weights.h"

#include <cstdint>

namespace plm {

F32Weights::F32Weights(const TensorView& v) : size_(static_cast<size_t>(v.numel())) {
  if (v.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(v.data) % alignof(float) == 0) {
    ptr_ = reinterpret_cast<const float*>(v.data);
  } else {
    owned_ = v.ToF32();
    ptr_ = owned_.data();
  }
}

F32Weights& F32Weights::operator=(F32Weights&& o) noexcept {
  const bool borrowed = o.borrowed();
  owned_ = std::move(o.owned_);
  ptr_ = borrowed ? o.ptr_ : owned_.data();
  size_ = o.size_;
  o.ptr_ = nullptr;
  o.size_ = 0;
  return *this;
}

}  // namespace plm
