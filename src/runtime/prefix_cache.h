// Reuse of KV caches across requests that share a prompt prefix (same system prompt, same image,
// earlier turns of a conversation). Used by the serving engine's compute thread only.
#pragma once

#include <cstdint>
#include <list>
#include <vector>

#include "plm/config.h"
#include "plm/kv_cache.h"
#include "plm/model.h"
#include "plm/processor.h"

namespace plm {

// One key per prompt position: the token id for text, and for an image/video placeholder a
// 64-bit hash of that image's (or video's) pixels with the top bit set, so two prompts share a
// key prefix only when their tokens and the media behind their placeholders agree. Throws
// kInvalidArgument when the placeholders do not match the tiles/frames of `in`.
std::vector<uint64_t> PrefixKeys(const ProcessorOutputs& in, int64_t image_token,
                                 int64_t video_token);

// A byte-bounded LRU of finished sequences' KV caches keyed by their position keys.
class PrefixCache {
 public:
  PrefixCache(const TextConfig& config, int64_t max_bytes, int64_t min_reuse);

  struct Match {
    int64_t length = 0;  // positions to reuse (0: none)
    const KVCache* cache = nullptr;
  };
  // The longest stored prefix of `keys`, at most keys.size() - 1 positions (the last prompt
  // position is always recomputed for its logits); shorter than min_reuse counts as none.
  Match Lookup(const std::vector<uint64_t>& keys);
  // A new batch-1 cache of `capacity` positions holding the first match.length positions.
  KVCache CopyPrefix(const Match& match, const PerceptionLMForConditionalGeneration& model,
                     int64_t capacity) const;
  // Keeps the first keys.size() positions of `cache` (a compact copy). Entries that are a prefix
  // of the new one, or share at least three quarters of their keys with it, are dropped; nothing
  // is stored when an entry already extends it.
  void Store(std::vector<uint64_t> keys, const KVCache& cache,
             const PerceptionLMForConditionalGeneration& model);

  int64_t entries() const { return static_cast<int64_t>(lru_.size()); }
  int64_t bytes() const { return bytes_; }

 private:
  struct Entry {
    std::vector<uint64_t> keys;
    KVCache cache;
    int64_t bytes = 0;
  };
  KVCache Copy(const KVCache& from, int64_t n, const PerceptionLMForConditionalGeneration& model,
               int64_t capacity) const;

  TextConfig config_;
  int64_t max_bytes_, min_reuse_;
  int64_t bytes_ = 0;
  std::list<Entry> lru_;  // most recently used first
};

}  // namespace plm
