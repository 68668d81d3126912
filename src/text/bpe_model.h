// Byte-level BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, merge
// ranks, ignore_merges, and a per-word cache. Words are raw bytes; the byte-level alphabet is
// only used to read the vocabulary.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"

namespace plm {

class BpeModel {
 public:
  // Reads vocab and merges (either ["a", "b"] pairs or legacy "a b" strings). Throws
  // kCorrupt naming `what` for a missing vocab/merges, a malformed merge, or a merge whose
  // parts or result are not in the vocabulary; kUnsupported for dropout, unk-less byte
  // fallback, or subword prefixes/suffixes.
  static std::unique_ptr<BpeModel> FromJson(const Json& model, const std::string& what);

  // Appends the ids of one pre-tokenized word (raw bytes).
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  // Token string as stored in the vocabulary (byte-level alphabet), or nullptr.
  const std::string* IdToToken(int32_t id) const;
  int32_t TokenToId(std::string_view token) const;  // -1 when absent
  size_t vocab_size() const { return vocab_.size(); }
  // One past the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

  // Drops the word cache (tests and memory-bound users).
  void ClearCache() const;

 private:
  struct MergeRule {
    uint32_t rank;
    int32_t result;
  };
  void MergeWord(std::string_view word, std::vector<int32_t>* out) const;
  const MergeRule* FindMerge(int32_t a, int32_t b) const;

  std::unordered_map<std::string, int32_t> vocab_;  // byte-level string -> id
  std::vector<std::string> id_to_token_;            // id -> byte-level string ("" = hole)
  std::vector<bool> id_present_;
  std::unordered_map<std::string, int32_t> raw_vocab_;  // raw bytes -> id
  int32_t byte_ids_[256];
  std::unordered_map<uint64_t, MergeRule> merges_;
  bool ignore_merges_ = false;

  // Cache of merged words (raw bytes -> ids). Guarded by a mutex so a Tokenizer can be shared
  // between threads; bounded so adversarial input cannot grow it without limit.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace plm
