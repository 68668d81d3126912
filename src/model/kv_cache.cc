#include "plm/kv_cache.h"

#include <algorithm>

#include "plm/error.h"

namespace plm {

KVCache::KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim,
                 int64_t capacity)
    : layers_(layers), batch_(batch), kv_heads_(kv_heads), head_dim_(head_dim) {
  Reserve(capacity);
}

void KVCache::Reserve(int64_t n) {
  if (n <= capacity_) return;
  // Grow geometrically so token-by-token decoding does not copy on every step.
  const int64_t cap = std::max(n, capacity_ + capacity_ / 2);
  const int64_t rows = layers_ * batch_ * kv_heads_;
  std::vector<float> nk(static_cast<size_t>(rows * cap * head_dim_)), nv(nk.size());
  std::vector<uint8_t> nvalid(static_cast<size_t>(batch_ * cap), 0);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(keys_.data() + r * capacity_ * head_dim_, length_ * head_dim_,
                nk.data() + r * cap * head_dim_);
    std::copy_n(values_.data() + r * capacity_ * head_dim_, length_ * head_dim_,
                nv.data() + r * cap * head_dim_);
  }
  for (int64_t b = 0; b < batch_; ++b)
    std::copy_n(valid_.data() + b * capacity_, length_, nvalid.data() + b * cap);
  keys_.swap(nk);
  values_.swap(nv);
  valid_.swap(nvalid);
  capacity_ = cap;
}

void KVCache::Trim(int64_t n) {
  if (n < 0 || n > length_)
    throw Error(ErrorCode::kInvalidArgument, "cannot trim a KV cache of " +
                                                 std::to_string(length_) + " positions to " +
                                                 std::to_string(n));
  length_ = n;
}

}  // namespace plm
