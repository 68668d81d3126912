// Float32 view of a checkpoint tensor: points straight into the memory-mapped file when it is
// stored as aligned float32 (no copy), otherwise owns a converted copy (bf16/f16 → f32).
#pragma once

#include <vector>

#include "io/safetensors.h"
#include "plm/model.h"

namespace plm {

class F32Weights {
 public:
  F32Weights() = default;
  explicit F32Weights(const TensorView& v);
  F32Weights(const F32Weights&) = delete;
  F32Weights& operator=(const F32Weights&) = delete;
  F32Weights(F32Weights&& o) noexcept { *this = std::move(o); }
  F32Weights& operator=(F32Weights&& o) noexcept;

  const float* data() const { return ptr_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool borrowed() const { return owned_.empty() && size_ > 0; }
  HeldBytes held_bytes() const {
    const size_t n = size_ * sizeof(float);
    return borrowed() ? HeldBytes{0, n} : HeldBytes{n, 0};
  }
  const float& operator[](size_t i) const { return ptr_[i]; }
  const float* begin() const { return ptr_; }
  const float* end() const { return ptr_ + size_; }

 private:
  std::vector<float> owned_;
  const float* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace plm
