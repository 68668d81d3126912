// The pre-tokenizer pipeline of tokenizer.json ("pre_tokenizer"): regex / literal Split steps
// followed by the ByteLevel step. The byte-level character mapping itself is not materialised:
// the BPE model works on raw bytes and maps through the alphabet only for token strings.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "text/unicode_regex.h"

namespace plm {

class PreTokenizer {
 public:
  // Builds the pipeline from the "pre_tokenizer" JSON value (null allowed). Supported types:
  // Split (Regex or String pattern, every behaviour, invert), ByteLevel (add_prefix_space,
  // use_regex) and Sequence of those. Anything else throws kUnsupported naming `what`.
  static PreTokenizer FromJson(const Json& j, const std::string& what);

  // Splits `text` (valid UTF-8) into words. Each word is a view into `text` or into `arena`
  // (words that received a prefix space live there; `arena` must outlive the words).
  void Split(std::string_view text, std::vector<std::string_view>* words,
             std::vector<std::unique_ptr<std::string>>* arena) const;

  bool byte_level() const { return byte_level_; }

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    enum class Kind { kRegex, kLiteral, kPrefixSpace } kind = Kind::kRegex;
    std::shared_ptr<UnicodeRegex> regex;
    std::string literal;
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
  };
  void AddFromJson(const Json& j, const std::string& what);
  void ApplySplit(const Step& step, std::string_view piece, std::vector<std::string_view>* out,
                  std::vector<std::pair<size_t, size_t>>* scratch) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace plm
