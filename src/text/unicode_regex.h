// PCRE2 (UTF + UCP, JIT) wrapper that behaves like the Oniguruma regexes Hugging Face tokenizers
// compile their pre-tokenizer patterns with.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plm {

// Rewrites the Oniguruma escapes whose meaning differs in PCRE2 so that the compiled pattern
// matches what tokenizers (onig, Ruby syntax) matches:
//   \s  -> Unicode White_Space (PCRE2's UCP \s also takes U+180E, onig does not)
//   \S  -> its complement (outside character classes)
//   \w  -> Letter | Mark | Decimal_Number | Connector_Punctuation (onig), \W its complement
//   \h  -> hexadecimal digit (onig/Ruby), \H its complement
// Everything else passes through unchanged.
std::string TranslateOnigPattern(std::string_view pattern);

class UnicodeRegex {
 public:
  // Compiles `pattern` (already in PCRE2 syntax); throws plm::Error(kCorrupt) naming `what` and
  // the offset of the syntax error.
  UnicodeRegex(const std::string& pattern, const std::string& what);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  // All non-overlapping matches, leftmost first, as byte ranges [begin, end) of `text`, with
  // the empty-match rule of onig's find_iter. `text` must be valid UTF-8.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;
  // True when the pattern matches at the very start of `text` (anchored).
  bool MatchesAt(std::string_view text, size_t offset) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace plm
