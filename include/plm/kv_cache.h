// Key/value cache of the Llama decoder: per layer [batch, kv_heads, capacity, head_dim], stored as
// float32 (the f32 reference compute path) or bfloat16 (the bf16/q8/q4 paths: half the bytes read
// per decoded token), plus which cached positions are real tokens (the attention mask of the
// cached keys). k()/v() give float32 rows and v_bf16() bf16 rows; k_bf16() gives bf16 keys in
// tiles of 32 positions, [head_dim / 2][32][2] per tile (dimension pairs of 32 consecutive
// positions: the layout the attention kernels read; src/core/key_tiles.h, KeyTileIndex, gives
// an element's offset), so a bf16 cache's capacity is a multiple of 32 and its head_dim even.
// Each accessor throws kInvalidArgument when the cache holds the other type (type() says which).
// CopyPrefixFrom copies positions whatever the type.
// It grows on demand, so callers size it to the request rather than to the model maximum.
// HF's DynamicCache: keep it between Forward calls, Trim it (DynamicCache.crop) to reuse a prefix.
//
//   plm::KVCache cache = model->NewCache(/*batch=*/1, /*capacity=*/prompt_len + 64);
//   model->Forward(prompt, &cache);         // fills positions 0..prompt_len-1
//   model->Forward(continuation_a, &cache);  // continues after the prompt
//   cache.Trim(prompt_len);                  // back to the shared prefix
//   model->Forward(continuation_b, &cache);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "plm/huge_page_allocator.h"

namespace plm {

enum class KVType : uint8_t { kF32, kBF16 };

class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t capacity = 0,
          KVType type = KVType::kF32);

  int64_t layers() const { return layers_; }
  int64_t batch() const { return batch_; }
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  KVType type() const { return type_; }

  // Makes room for `n` positions in total, keeping the contents.
  void Reserve(int64_t n);
  // Drops every position at or after `n` (e.g. to reuse a shared prompt prefix).
  void Trim(int64_t n);
  void Clear() { Trim(0); }

  // `capacity()` positions x head_dim of one layer / batch row / KV head: rows, except bf16 keys
  // (tiles, see above).
  float* k(int64_t layer, int64_t b, int64_t head) {
    return At(keys_, KVType::kF32, layer, b, head);
  }
  float* v(int64_t layer, int64_t b, int64_t head) {
    return At(values_, KVType::kF32, layer, b, head);
  }
  const float* k(int64_t layer, int64_t b, int64_t head) const {
    return At(keys_, KVType::kF32, layer, b, head);
  }
  const float* v(int64_t layer, int64_t b, int64_t head) const {
    return At(values_, KVType::kF32, layer, b, head);
  }
  uint16_t* k_bf16(int64_t layer, int64_t b, int64_t head) {
    return At(keys16_, KVType::kBF16, layer, b, head);
  }
  uint16_t* v_bf16(int64_t layer, int64_t b, int64_t head) {
    return At(values16_, KVType::kBF16, layer, b, head);
  }
  const uint16_t* k_bf16(int64_t layer, int64_t b, int64_t head) const {
    return At(keys16_, KVType::kBF16, layer, b, head);
  }
  const uint16_t* v_bf16(int64_t layer, int64_t b, int64_t head) const {
    return At(values16_, KVType::kBF16, layer, b, head);
  }
  // Makes this cache hold the first `n` positions of `from` (keys, values and valid flags of
  // every batch row; this cache's previous contents are dropped, its capacity kept if larger).
  // Needs the same layers, batch, heads, head_dim and type, and n <= from.length();
  // kInvalidArgument otherwise.
  void CopyPrefixFrom(const KVCache& from, int64_t n);
  // 1 where cached position `pos` of row `b` holds a real (non-padding) token.
  uint8_t valid(int64_t b, int64_t pos) const { return valid_[b * capacity_ + pos]; }
  const uint8_t* valid_row(int64_t b) const { return valid_.data() + b * capacity_; }
  void set_valid(int64_t b, int64_t pos, uint8_t v) { valid_[b * capacity_ + pos] = v; }
  // Advances the length after the decoder wrote `n` new positions.
  void Advance(int64_t n) { length_ += n; }
  size_t BytesUsed() const {
    return (keys_.size() + values_.size()) * sizeof(float) +
           (keys16_.size() + values16_.size()) * sizeof(uint16_t);
  }

 private:
  void CheckType(KVType t) const;
  template <typename V>
  auto At(V& buf, KVType t, int64_t layer, int64_t b, int64_t head) const -> decltype(buf.data()) {
    if (t != type_) CheckType(t);
    return buf.data() + (((layer * batch_ + b) * kv_heads_ + head) * capacity_) * head_dim_;
  }

  int64_t layers_ = 0, batch_ = 0, kv_heads_ = 0, head_dim_ = 0, capacity_ = 0, length_ = 0;
  KVType type_ = KVType::kF32;
  // Decode reads the whole cache every token: huge pages (see plm/huge_page_allocator.h).
  template <typename T>
  using Buffer = std::vector<T, HugePageAllocator<T>>;
  Buffer<float> keys_, values_;         // kF32
  Buffer<uint16_t> keys16_, values16_;  // kBF16
  std::vector<uint8_t> valid_;
};

}  // namespace plm
