#include "runtime/text_stream.h"

#include <algorithm>

namespace plm {

TextStream::TextStream(const PerceptionLMProcessor& processor,
                       std::vector<std::string> stop_strings)
    : decoder_(processor.NewStreamDecoder(true)) {
  for (auto& s : stop_strings)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string TextStream::Take(size_t end) {
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return out;
}

// Looks for a stop string in the text added after `before` (plus the overlap a match may need).
std::string TextStream::Scan(size_t before) {
  size_t first = std::string::npos;
  for (const auto& s : stops_) {
    const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) first = std::min(first, at);
  }
  if (first != std::string::npos) {
    text_.resize(first);
    stopped_ = true;
    emitted_ = std::min(emitted_, first);
    return Take(first);
  }
  // Hold back the longest tail that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t n = std::min(s.size() - 1, text_.size() - emitted_); n > hold; --n) {
      if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  return Take(text_.size() - hold);
}

std::string TextStream::Push(int64_t token) {
  if (stopped_) return "";
  const std::string piece = decoder_->Push(token);
  if (piece.empty()) return "";
  const size_t before = text_.size();
  text_ += piece;
  return Scan(before);
}

std::string TextStream::Finish() {
  if (stopped_) return "";
  const size_t before = text_.size();
  text_ += decoder_->Flush();
  std::string out = Scan(before);
  if (!stopped_) out += Take(text_.size());
  return out;
}

}  // namespace plm
