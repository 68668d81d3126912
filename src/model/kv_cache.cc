#include "plm/kv_cache.h"

#include <algorithm>
#include <string>

#include "core/key_tiles.h"
#include "plm/error.h"

namespace plm {

KVCache::KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim,
                 int64_t capacity, KVType type)
    : layers_(layers), batch_(batch), kv_heads_(kv_heads), head_dim_(head_dim), type_(type) {
  if (type == KVType::kBF16 && head_dim % 2 != 0)
    throw Error(ErrorCode::kInvalidArgument,
                "a bfloat16 KV cache needs an even head_dim (keys are stored as dimension pairs), "
                "got " +
                    std::to_string(head_dim));
  Reserve(capacity);
}

namespace {

// Copies `len` positions of each of `rows` rows from a buffer of capacity `from_cap` into one of
// capacity `to_cap`.
template <typename V>
void CopyRows(const V& from, int64_t from_cap, V* to, int64_t to_cap, int64_t rows, int64_t len,
              int64_t hd) {
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(from.data() + r * from_cap * hd, len * hd, to->data() + r * to_cap * hd);
}

}  // namespace

void KVCache::Reserve(int64_t n) {
  if (n <= capacity_) return;
  // Grow geometrically so token-by-token decoding does not copy on every step; bf16 keys come
  // in whole tiles of positions.
  int64_t cap = std::max(n, capacity_ + capacity_ / 2);
  if (type_ == KVType::kBF16) cap = KeyTilePositions(cap);
  const int64_t rows = layers_ * batch_ * kv_heads_;
  const auto size = static_cast<size_t>(rows * cap * head_dim_);
  if (type_ == KVType::kF32) {
    Buffer<float> nk(size), nv(size);
    CopyRows(keys_, capacity_, &nk, cap, rows, length_, head_dim_);
    CopyRows(values_, capacity_, &nv, cap, rows, length_, head_dim_);
    keys_.swap(nk);
    values_.swap(nv);
  } else {
    Buffer<uint16_t> nk(size), nv(size);
    CopyRows(keys16_, capacity_, &nk, cap, rows, KeyTilePositions(length_), head_dim_);
    CopyRows(values16_, capacity_, &nv, cap, rows, length_, head_dim_);
    keys16_.swap(nk);
    values16_.swap(nv);
  }
  std::vector<uint8_t> nvalid(static_cast<size_t>(batch_ * cap), 0);
  for (int64_t b = 0; b < batch_; ++b)
    std::copy_n(valid_.data() + b * capacity_, length_, nvalid.data() + b * cap);
  valid_.swap(nvalid);
  capacity_ = cap;
}

void KVCache::CheckType(KVType t) const {
  if (t == type_) return;
  auto name = [](KVType x) { return x == KVType::kF32 ? "float32" : "bfloat16"; };
  throw Error(ErrorCode::kInvalidArgument, std::string("the KV cache holds ") + name(type_) +
                                               ", not " + name(t) + " keys and values");
}

void KVCache::CopyPrefixFrom(const KVCache& from, int64_t n) {
  if (from.layers_ != layers_ || from.batch_ != batch_ || from.kv_heads_ != kv_heads_ ||
      from.head_dim_ != head_dim_ || from.type_ != type_)
    throw Error(ErrorCode::kInvalidArgument,
                "CopyPrefixFrom needs KV caches of the same shape and element type");
  if (n < 0 || n > from.length_)
    throw Error(ErrorCode::kInvalidArgument, "cannot copy " + std::to_string(n) +
                                                 " positions from a KV cache of " +
                                                 std::to_string(from.length_));
  length_ = 0;
  Reserve(n);
  const int64_t rows = layers_ * batch_ * kv_heads_;
  if (type_ == KVType::kF32) {
    CopyRows(from.keys_, from.capacity_, &keys_, capacity_, rows, n, head_dim_);
    CopyRows(from.values_, from.capacity_, &values_, capacity_, rows, n, head_dim_);
  } else {
    CopyRows(from.keys16_, from.capacity_, &keys16_, capacity_, rows, KeyTilePositions(n),
             head_dim_);
    CopyRows(from.values16_, from.capacity_, &values16_, capacity_, rows, n, head_dim_);
  }
  for (int64_t b = 0; b < batch_; ++b)
    std::copy_n(from.valid_.data() + b * from.capacity_, n, valid_.data() + b * capacity_);
  length_ = n;
}

void KVCache::Trim(int64_t n) {
  if (n < 0 || n > length_)
    throw Error(ErrorCode::kInvalidArgument, "cannot trim a KV cache of " +
                                                 std::to_string(length_) + " positions to " +
                                                 std::to_string(n));
  length_ = n;
}

}  // namespace plm
