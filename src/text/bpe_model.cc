#include "text/bpe_model.h"

#include <queue>

#include "plm/error.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace plm {

namespace {

constexpr size_t kCacheCapacity = 1 << 18;   // words
constexpr size_t kMaxCachedWordBytes = 256;  // same bound as tokenizers' cache

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Raw bytes of a vocabulary string, or false when it has characters outside the alphabet.
bool RawBytes(const std::string& token, std::string* out) {
  out->clear();
  return ByteLevelDecodeToken(token, out);
}

}  // namespace

std::unique_ptr<BpeModel> BpeModel::FromJson(const Json& model, const std::string& what) {
  if (!model.is_object()) throw Error(ErrorCode::kCorrupt, what + ": \"model\" must be an object");
  const std::string type = JsonStringOr(model, "type", "BPE", what);
  if (type != "BPE")
    throw Error(ErrorCode::kUnsupported,
                what + ": model type \"" + type + "\" is not supported (BPE only)");
  if (!model.contains("vocab") || !model["vocab"].is_object())
    throw Error(ErrorCode::kCorrupt, what + ": BPE model without a \"vocab\" object");
  if (!model.contains("merges") || !model["merges"].is_array())
    throw Error(ErrorCode::kCorrupt, what + ": BPE model without a \"merges\" array");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      model["dropout"].get<double>() != 0.0)
    throw Error(ErrorCode::kUnsupported, what + ": BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
      throw Error(ErrorCode::kUnsupported, what + ": BPE \"" + key + "\" is not supported");
  }
  if (JsonBoolOr(model, "byte_fallback", false, what))
    throw Error(ErrorCode::kUnsupported, what + ": BPE byte_fallback is not supported");

  auto m = std::unique_ptr<BpeModel>(new BpeModel());
  m->ignore_merges_ = JsonBoolOr(model, "ignore_merges", false, what);
  const Json& vocab = model["vocab"];
  m->vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX - 1)
      throw Error(ErrorCode::kCorrupt,
                  what + ": vocab entry \"" + it.key() + "\" must have a non-negative integer id");
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    m->vocab_[it.key()] = id;
    max_id = std::max<int64_t>(max_id, id);
  }
  m->id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  m->id_present_.assign(static_cast<size_t>(max_id + 1), false);
  std::fill(std::begin(m->byte_ids_), std::end(m->byte_ids_), -1);
  std::string raw;
  for (const auto& [token, id] : m->vocab_) {
    m->id_to_token_[static_cast<size_t>(id)] = token;
    m->id_present_[static_cast<size_t>(id)] = true;
    if (RawBytes(token, &raw)) {
      m->raw_vocab_.emplace(raw, id);
      if (raw.size() == 1) m->byte_ids_[static_cast<unsigned char>(raw[0])] = id;
    }
  }

  const Json& merges = model["merges"];
  m->merges_.reserve(merges.size());
  std::string a, b;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& e = merges[rank];
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw Error(ErrorCode::kCorrupt, what + ": merge " + std::to_string(rank) + " (\"" + s +
                                             "\") must be two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      throw Error(ErrorCode::kCorrupt, what + ": merge " + std::to_string(rank) +
                                           " must be a pair of strings or \"a b\"");
    }
    auto ia = m->vocab_.find(a);
    auto ib = m->vocab_.find(b);
    auto ir = m->vocab_.find(a + b);
    const std::string* missing = ia == m->vocab_.end() ? &a : ib == m->vocab_.end() ? &b : nullptr;
    if (missing != nullptr || ir == m->vocab_.end()) {
      throw Error(ErrorCode::kCorrupt, what + ": merge " + std::to_string(rank) + " (\"" + a +
                                           "\" \"" + b +
                                           "\") refers to a token not in the vocabulary: \"" +
                                           (missing != nullptr ? *missing : a + b) + "\"");
    }
    // Later duplicates win, as when tokenizers collects the merges into a map.
    m->merges_[PairKey(ia->second, ib->second)] = {static_cast<uint32_t>(rank), ir->second};
  }
  return m;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() ||
      !id_present_[static_cast<size_t>(id)])
    return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

const BpeModel::MergeRule* BpeModel::FindMerge(int32_t a, int32_t b) const {
  auto it = merges_.find(PairKey(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* out) const {
  // Symbols form a doubly linked list; candidate merges sit in a min-heap ordered by
  // (rank, position), and stale entries are skipped when popped (tokenizers' Word::merge_all).
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id < 0) continue;  // no unk token: a byte missing from the vocabulary is dropped
    const auto n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, n + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t result;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  for (size_t i = 0; i + 1 < sym.size(); ++i) {
    if (const MergeRule* mg = FindMerge(sym[i].id, sym[i + 1].id))
      queue.push({mg->rank, static_cast<int32_t>(i), mg->result});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[static_cast<size_t>(left.next)];
    const MergeRule* current = FindMerge(left.id, right.id);
    if (current == nullptr || current->result != top.result) continue;  // stale entry
    left.id = top.result;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeRule* mg = FindMerge(sym[static_cast<size_t>(left.prev)].id, left.id))
        queue.push({mg->rank, left.prev, mg->result});
    }
    if (left.next >= 0) {
      if (const MergeRule* mg = FindMerge(left.id, sym[static_cast<size_t>(left.next)].id))
        queue.push({mg->rank, top.pos, mg->result});
    }
  }
  for (const Symbol& s : sym)
    if (s.alive) out->push_back(s.id);
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = raw_vocab_.find(std::string(word));
    if (it != raw_vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  if (word.size() == 1) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(word[0])];
    if (id >= 0) ids->push_back(id);
    return;
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t mark = ids->size();
  MergeWord(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(
        std::move(key),
        std::vector<int32_t>(ids->begin() + static_cast<std::ptrdiff_t>(mark), ids->end()));
  }
}

void BpeModel::ClearCache() const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.clear();
}

}  // namespace plm
