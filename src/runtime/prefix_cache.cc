#include "runtime/prefix_cache.h"

#include <algorithm>
#include <cstring>

#include "plm/error.h"

namespace plm {

namespace {

uint64_t Mix(uint64_t a, uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

// A fast 64-bit hash of a float buffer (multiply-mix per 8 bytes; not cryptographic).
uint64_t HashFloats(const float* data, size_t n) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  const size_t size = n * sizeof(float);
  uint64_t h = 0x243F6A8885A308D3ull ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes + i, 8);
    h = Mix(h ^ w, 0x9E3779B97F4A7C15ull) + i;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes + i, size - i);
  return Mix(h ^ tail, 0xC2B2AE3D27D4EB4Full);
}

// Hashes of each media item's pixels, and the item each placeholder row belongs to.
std::vector<uint64_t> ItemHashes(const std::vector<float>& pixels, int64_t tiles,
                                 const std::vector<int64_t>& tiles_per_item, const char* what) {
  std::vector<uint64_t> out;
  if (tiles == 0) return out;
  const size_t tile_elems = pixels.size() / static_cast<size_t>(tiles);
  std::vector<int64_t> per = tiles_per_item;
  if (per.empty()) per.push_back(tiles);
  int64_t sum = 0;
  for (int64_t t : per) sum += t;
  if (sum != tiles || pixels.size() != tile_elems * static_cast<size_t>(tiles))
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + " tiles per item do not add up to the pixel tiles");
  int64_t at = 0;
  for (int64_t t : per) {
    out.push_back(HashFloats(pixels.data() + at * tile_elems, t * tile_elems) |
                  (uint64_t{1} << 63));
    at += t;
  }
  return out;
}

}  // namespace

std::vector<uint64_t> PrefixKeys(const ProcessorOutputs& in, int64_t image_token,
                                 int64_t video_token) {
  int64_t image_rows = 0, video_rows = 0;
  for (int64_t id : in.input_ids) {
    image_rows += id == image_token;
    video_rows += id == video_token;
  }
  auto check = [](int64_t rows, int64_t tiles, const char* what) {
    if ((tiles == 0) != (rows == 0) || (tiles > 0 && rows % tiles != 0))
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(what) + " features and " + what + " tokens do not match: tokens: " +
                      std::to_string(rows) + ", tiles: " + std::to_string(tiles));
  };
  check(image_rows, in.image_tiles, "image");
  check(video_rows, in.video_frames, "video");
  const auto image_hash = ItemHashes(in.pixel_values, in.image_tiles, in.tiles_per_image, "image");
  const auto video_hash =
      ItemHashes(in.pixel_values_videos, in.video_frames, in.frames_per_video, "video");
  const int64_t image_rpt = in.image_tiles > 0 ? image_rows / in.image_tiles : 1;
  const int64_t video_rpt = in.video_frames > 0 ? video_rows / in.video_frames : 1;
  // Placeholder row r belongs to the item whose tile range holds r / rows_per_tile.
  auto item_of = [](const std::vector<int64_t>& per, int64_t tile) {
    int64_t at = 0;
    for (size_t i = 0; i < per.size(); ++i) {
      at += per[i];
      if (tile < at) return i;
    }
    return per.empty() ? size_t{0} : per.size() - 1;
  };
  std::vector<uint64_t> keys;
  keys.reserve(in.input_ids.size());
  int64_t ir = 0, vr = 0;
  for (int64_t id : in.input_ids) {
    if (id == image_token) {
      keys.push_back(image_hash[item_of(in.tiles_per_image, ir++ / image_rpt)]);
    } else if (id == video_token) {
      keys.push_back(video_hash[item_of(in.frames_per_video, vr++ / video_rpt)]);
    } else {
      keys.push_back(static_cast<uint64_t>(id));
    }
  }
  return keys;
}

PrefixCache::PrefixCache(const TextConfig& config, int64_t max_bytes, int64_t min_reuse)
    : config_(config), max_bytes_(max_bytes), min_reuse_(std::max<int64_t>(min_reuse, 1)) {}

PrefixCache::Match PrefixCache::Lookup(const std::vector<uint64_t>& keys) {
  Match best;
  auto best_it = lru_.end();
  const size_t limit = keys.empty() ? 0 : keys.size() - 1;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const size_t n = std::min(limit, it->keys.size());
    const size_t common =
        std::mismatch(keys.begin(), keys.begin() + n, it->keys.begin()).first - keys.begin();
    if (static_cast<int64_t>(common) > best.length) {
      best.length = static_cast<int64_t>(common);
      best.cache = &it->cache;
      best_it = it;
    }
  }
  if (best.length < min_reuse_) return {};
  lru_.splice(lru_.begin(), lru_, best_it);  // most recently used
  return best;
}

KVCache PrefixCache::Copy(const KVCache& from, int64_t n,
                          const PerceptionLMForConditionalGeneration& model,
                          int64_t capacity) const {
  KVCache to = model.NewCache(1, std::max(capacity, n));
  to.CopyPrefixFrom(from, n);  // keys, values (float32 or bf16) and valid flags
  return to;
}

KVCache PrefixCache::CopyPrefix(const Match& match,
                                const PerceptionLMForConditionalGeneration& model,
                                int64_t capacity) const {
  if (match.cache == nullptr || match.length <= 0) return model.NewCache(1, capacity);
  return Copy(*match.cache, match.length, model, capacity);
}

void PrefixCache::Store(std::vector<uint64_t> keys, const KVCache& cache,
                        const PerceptionLMForConditionalGeneration& model) {
  if (max_bytes_ <= 0 || static_cast<int64_t>(keys.size()) < min_reuse_) return;
  const int64_t n = static_cast<int64_t>(keys.size());
  if (cache.batch() != 1 || cache.length() < n) return;
  for (auto it = lru_.begin(); it != lru_.end();) {
    const size_t m = std::min(keys.size(), it->keys.size());
    const size_t common =
        std::mismatch(keys.begin(), keys.begin() + m, it->keys.begin()).first - keys.begin();
    if (common == m && it->keys.size() >= keys.size()) {
      lru_.splice(lru_.begin(), lru_, it);  // already covered: just refresh it
      return;
    }
    // Dropped: entries the new one extends, and older ones that differ from it only in their last
    // quarter (the same image or document with another question): the new entry serves their
    // shared prefix, and keeping each variant would fill the cache with near-copies.
    if (common == m ||
        (static_cast<int64_t>(common) >= min_reuse_ && common * 4 >= it->keys.size() * 3)) {
      bytes_ -= it->bytes;
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  Entry e;
  e.cache = Copy(cache, n, model, n);
  e.bytes = static_cast<int64_t>(e.cache.BytesUsed());
  if (e.bytes > max_bytes_) return;
  e.keys = std::move(keys);
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    lru_.pop_back();
  }
}

}  // namespace plm
