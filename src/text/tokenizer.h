// Hugging Face byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json), matching
// transformers 5.x `TokenizersBackend` + tokenizers: same ids, token strings and decoded text.
//
// Supported tokenizer.json components (others throw kUnsupported naming the file):
//   normalizer: null
//   pre_tokenizer: Split (Regex/String, any behaviour, invert), ByteLevel, Sequence of those
//   model: BPE (vocab, merges in either format, ignore_merges; no dropout/byte_fallback)
//   post_processor: TemplateProcessing, ByteLevel, Sequence, null
//   decoder: ByteLevel
//   added_tokens: all flags (single_word, lstrip, rstrip, normalized, special); ids are
//     assigned as tokenizers does it (a content already in the vocabulary keeps that id, a new
//     one takes the next free id), not read from the "id" field
//   truncation / padding: ignored, as transformers disables them unless a call asks for them
// tokenizer_config.json: bos/eos/pad/unk tokens (string or {"content": ...}), add_bos_token /
// add_eos_token (rebuild the post-processor as transformers does), clean_up_tokenization_spaces,
// split_special_tokens, added_tokens_decoder.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace plm {

class AddedVocabulary;
class BpeModel;
class PreTokenizer;

class Tokenizer {
 public:
  // Reads model_dir/tokenizer.json and, when present, model_dir/tokenizer_config.json.
  static Tokenizer FromDirectory(const std::string& model_dir);
  // `config_path` may be empty (no tokenizer_config.json).
  static Tokenizer FromFiles(const std::string& tokenizer_json_path,
                             const std::string& config_path);
  // From parsed JSON; `what` names the source in errors.
  static Tokenizer FromJson(const Json& tokenizer_json, const Json& config,
                            const std::string& what);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text` (valid UTF-8; invalid input throws kInvalidArgument naming the byte
  // offset). Added/special tokens in the text are matched first. add_special_tokens applies
  // the post-processor (BOS for Llama 3).
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const;
  // Token strings (vocabulary spelling, e.g. "Ġworld") of the same encoding.
  std::vector<std::string> Tokenize(std::string_view text, bool add_special_tokens = false) const;

  // Text of `ids`. skip_special_tokens drops special added tokens. clean_up_tokenization_spaces
  // defaults to the config value, and - as in transformers 5 - is ignored for BPE models unless
  // the config sets clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output.
  // Ids with no token are skipped (as tokenizers does); negative ids throw kInvalidArgument.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false,
                     std::optional<bool> clean_up_tokenization_spaces = std::nullopt) const;

  int32_t TokenToId(std::string_view token) const;  // -1 when unknown
  std::optional<std::string> IdToToken(int32_t id) const;
  bool IsSpecial(int32_t id) const;

  // One past the largest id (base vocabulary plus added tokens): 128256 for Llama 3.
  size_t vocab_size() const;
  int32_t bos_token_id() const { return bos_id_; }  // -1 when not configured
  int32_t eos_token_id() const { return eos_id_; }
  int32_t pad_token_id() const { return pad_id_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  const std::string& pad_token() const { return pad_token_; }
  // Whether Decode applies the cleanup by default (after the BPE rule above).
  bool clean_up_tokenization_spaces() const;

  // Named special tokens as transformers' special_tokens_map (bos_token, eos_token, pad_token,
  // unk_token, and other "*_token" strings such as image_token): the chat template context.
  const std::map<std::string, std::string>& special_tokens_map() const { return special_map_; }
  const Json& config() const { return config_; }

  // Whether Decode applies the cleanup for this request (transformers 5 rules above).
  bool EffectiveCleanup(std::optional<bool> requested) const;

  // Byte-level decoding of one token id to its raw bytes (may be an incomplete UTF-8
  // sequence); false when the id has no token. Used by StreamingDecoder.
  bool AppendTokenBytes(int32_t id, bool skip_special_tokens, std::string* bytes) const;

 private:
  Tokenizer();
  struct PostStep {
    std::vector<int32_t> ids;  // special token ids to insert
    bool is_sequence = false;  // $A
  };
  void EncodeInto(std::string_view text, std::vector<int32_t>* ids) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<AddedVocabulary> added_;
  std::vector<PostStep> post_single_;  // empty: no post-processing
  bool has_post_processor_ = false;
  bool split_special_tokens_ = false;
  bool clean_up_default_ = false;
  bool clean_up_for_bpe_ = false;
  std::string bos_token_, eos_token_, pad_token_;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  std::map<std::string, std::string> special_map_;
  Json config_;
};

// transformers' special_tokens_map from a parsed tokenizer_config.json: every "*_token" key
// with a string (or {"content": ...}) value, plus extra_special_tokens given as a mapping.
std::map<std::string, std::string> SpecialTokensMapFromConfig(const Json& config);

// transformers' clean_up_tokenization: removes the space before . ? ! , and English
// contractions, as a sequence of plain replacements.
std::string CleanUpTokenizationSpaces(std::string_view text);

}  // namespace plm
