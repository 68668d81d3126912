// Added tokens (special tokens and user-added tokens) are matched in the raw text before
// pre-tokenization, exactly as tokenizers' AddedVocabulary does: leftmost-longest matching,
// then the single_word / lstrip / rstrip rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace plm {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A piece of the input: either an added token (id >= 0) or text for the model (id == -1).
struct TextSegment {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  // Adds or replaces the token with this id (later entries win, as in tokenizers).
  void Add(const AddedToken& token);
  // Builds the matcher; call after the last Add.
  void Finalize();

  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Splits `text` into added-token matches and the text between them. tokenizers runs two
  // passes: tokens with normalized=false on the raw text first, then tokens with
  // normalized=true on what is left (after normalization); `normalized` picks the pass. When
  // `match_special` is false, special tokens are not matched (tokenizers'
  // encode_special_tokens). Segment offsets are relative to `text`.
  void Split(std::string_view text, bool normalized, bool match_special,
             std::vector<TextSegment>* out) const;

 private:
  struct TrieNode {
    std::unordered_map<unsigned char, uint32_t> next;
    int32_t token_index = -1;
  };
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  std::vector<TrieNode> trie_[2];  // [normalized]
  bool first_byte_[2][256] = {};
};

}  // namespace plm
