#include "text/streaming_decoder.h"

#include "text/tokenizer.h"
#include "text/utf8.h"

namespace plm {

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens,
                                   std::optional<bool> clean_up_tokenization_spaces)
    : tokenizer_(&tokenizer),
      skip_special_tokens_(skip_special_tokens),
      clean_up_(tokenizer.EffectiveCleanup(clean_up_tokenization_spaces)) {}

std::string StreamingDecoder::Put(int32_t id) {
  tokenizer_->AppendTokenBytes(id, skip_special_tokens_, &bytes_);
  const size_t stable = Utf8StablePrefix(bytes_);
  if (stable == 0) return {};
  std::string decoded = Utf8Lossy(std::string_view(bytes_).substr(0, stable));
  bytes_.erase(0, stable);
  if (!clean_up_) return decoded;
  text_ += decoded;
  return TakeSafeText();
}

// The longest prefix of text_ whose last three characters are not spaces: no cleanup match
// can span that cut, so cleaning the prefix alone gives the same text as cleaning it in place.
std::string StreamingDecoder::TakeSafeText() {
  size_t cut = text_.size();
  while (cut > 0) {
    size_t p = cut;
    int chars = 0;
    bool space = false;
    while (p > 0 && chars < 3) {
      --p;
      while (p > 0 && (static_cast<unsigned char>(text_[p]) & 0xC0) == 0x80) --p;
      space = space || text_[p] == ' ';
      ++chars;
    }
    if (chars == 3 && !space) break;
    // Move the cut one character left and try again.
    size_t q = cut - 1;
    while (q > 0 && (static_cast<unsigned char>(text_[q]) & 0xC0) == 0x80) --q;
    cut = q;
  }
  if (cut == 0) return {};
  std::string out = CleanUpTokenizationSpaces(std::string_view(text_).substr(0, cut));
  text_.erase(0, cut);
  return out;
}

std::string StreamingDecoder::Flush() {
  std::string rest = text_ + Utf8Lossy(bytes_);
  if (clean_up_) rest = CleanUpTokenizationSpaces(rest);
  Reset();
  return rest;
}

void StreamingDecoder::Reset() {
  bytes_.clear();
  text_.clear();
}

}  // namespace plm
