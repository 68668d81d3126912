#include "text/added_vocabulary.h"

#include <algorithm>

#include "text/unicode_props.h"
#include "text/utf8.h"

namespace plm {

void AddedVocabulary::Add(const AddedToken& token) {
  if (token.content.empty()) return;  // tokenizers ignores empty added tokens
  auto it = by_id_.find(token.id);
  if (it != by_id_.end()) {
    by_content_.erase(tokens_[it->second].content);
    tokens_[it->second] = token;
    by_content_[token.content] = it->second;
    return;
  }
  by_id_[token.id] = tokens_.size();
  by_content_[token.content] = tokens_.size();
  tokens_.push_back(token);
}

void AddedVocabulary::Finalize() {
  for (int n = 0; n < 2; ++n) {
    trie_[n].assign(1, TrieNode{});
    for (bool& b : first_byte_[n]) b = false;
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    // Only the content of a token whose id still maps to it takes part (a later token with the
    // same content replaces the earlier one in tokenizers' content map).
    auto c = by_content_.find(tokens_[i].content);
    if (c == by_content_.end() || c->second != i) continue;
    std::vector<TrieNode>& trie = trie_[tokens_[i].normalized ? 1 : 0];
    uint32_t node = 0;
    for (char ch : tokens_[i].content) {
      const auto b = static_cast<unsigned char>(ch);
      auto nx = trie[node].next.find(b);
      if (nx == trie[node].next.end()) {
        trie.push_back(TrieNode{});
        const auto created = static_cast<uint32_t>(trie.size() - 1);
        trie[node].next[b] = created;
        node = created;
      } else {
        node = nx->second;
      }
    }
    trie[node].token_index = static_cast<int32_t>(i);
    first_byte_[tokens_[i].normalized ? 1 : 0][static_cast<unsigned char>(tokens_[i].content[0])] =
        true;
  }
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::FindByContent(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

namespace {

// tokenizers checks word boundaries with Rust regex \w (Unicode): Alphabetic, marks, decimal
// digits, connector punctuation, join controls.
bool EndsWithWordChar(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  size_t pos = i;
  return IsRegexWordChar(DecodeUtf8(s, &pos));
}

bool StartsWithWordChar(std::string_view s) {
  if (s.empty()) return false;
  size_t pos = 0;
  return IsRegexWordChar(DecodeUtf8(s, &pos));
}

}  // namespace

void AddedVocabulary::Split(std::string_view text, bool normalized, bool match_special,
                            std::vector<TextSegment>* out) const {
  out->clear();
  const std::vector<TrieNode>& trie = trie_[normalized ? 1 : 0];
  const bool* first_byte = first_byte_[normalized ? 1 : 0];
  if (trie.size() <= 1) {
    if (!text.empty()) out->push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest match starting at pos.
    uint32_t node = 0;
    int32_t best = -1;
    size_t best_end = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto nx = trie[node].next.find(static_cast<unsigned char>(text[i]));
      if (nx == trie[node].next.end()) break;
      node = nx->second;
      if (trie[node].token_index >= 0) {
        best = trie[node].token_index;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[static_cast<size_t>(best)];
    size_t start = pos;
    size_t stop = best_end;
    pos = best_end;  // the match iterator resumes after a match even when it is discarded
    if (tok.special && !match_special) continue;
    if (tok.single_word) {
      const bool start_ok = start == 0 || !EndsWithWordChar(text.substr(0, start));
      const bool stop_ok = stop == text.size() || !StartsWithWordChar(text.substr(stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t b = s - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        size_t p = b;
        if (!IsUnicodeWhiteSpace(DecodeUtf8(text, &p))) break;
        s = b;
      }
      start = std::max(s, start_offset);
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        size_t p = stop;
        if (!IsUnicodeWhiteSpace(DecodeUtf8(text, &p))) break;
        stop = p;
      }
      pos = std::max(pos, stop);
    }
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, tok.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out->push_back({start_offset, text.size(), -1});
}

}  // namespace plm
