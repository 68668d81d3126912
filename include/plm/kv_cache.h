// Key/value cache of the Llama decoder: per layer [batch, kv_heads, capacity, head_dim] float32,
// plus which cached positions are real tokens (the attention mask of the cached keys).
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

namespace plm {

class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t capacity = 0);

  int64_t layers() const { return layers_; }
  int64_t batch() const { return batch_; }
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }

  // Makes room for `n` positions in total, keeping the contents.
  void Reserve(int64_t n);
  // Drops every position at or after `n` (e.g. to reuse a shared prompt prefix).
  void Trim(int64_t n);
  void Clear() { Trim(0); }

  float* k(int64_t layer, int64_t b, int64_t head) { return data(keys_, layer, b, head); }
  float* v(int64_t layer, int64_t b, int64_t head) { return data(values_, layer, b, head); }
  const float* k(int64_t layer, int64_t b, int64_t head) const {
    return cdata(keys_, layer, b, head);
  }
  const float* v(int64_t layer, int64_t b, int64_t head) const {
    return cdata(values_, layer, b, head);
  }
  // 1 where cached position `pos` of row `b` holds a real (non-padding) token.
  uint8_t valid(int64_t b, int64_t pos) const { return valid_[b * capacity_ + pos]; }
  const uint8_t* valid_row(int64_t b) const { return valid_.data() + b * capacity_; }
  void set_valid(int64_t b, int64_t pos, uint8_t v) { valid_[b * capacity_ + pos] = v; }
  // Advances the length after the decoder wrote `n` new positions.
  void Advance(int64_t n) { length_ += n; }
  size_t BytesUsed() const { return (keys_.size() + values_.size()) * sizeof(float); }

 private:
  float* data(std::vector<float>& buf, int64_t layer, int64_t b, int64_t head) {
    return buf.data() + (((layer * batch_ + b) * kv_heads_ + head) * capacity_) * head_dim_;
  }
  const float* cdata(const std::vector<float>& buf, int64_t layer, int64_t b, int64_t head) const {
    return buf.data() + (((layer * batch_ + b) * kv_heads_ + head) * capacity_) * head_dim_;
  }

  int64_t layers_ = 0, batch_ = 0, kv_heads_ = 0, head_dim_ = 0, capacity_ = 0, length_ = 0;
  std::vector<float> keys_, values_;
  std::vector<uint8_t> valid_;
};

}  // namespace plm
