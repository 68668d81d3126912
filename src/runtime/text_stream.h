// Generated tokens → streamed text with stop strings: the per-request text handling that
// Pipeline::Chat and the serving engine share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plm/processor.h"

namespace plm {

// Decodes tokens incrementally (complete UTF-8 only) and stops at the first stop string. Text that
// could still turn out to be the start of a stop string is held back, so everything returned is
// final: the concatenation of all returned pieces equals text().
class TextStream {
 public:
  TextStream(const PerceptionLMProcessor& processor, std::vector<std::string> stop_strings);

  // Adds one generated token; returns the text that became final (often empty). After a stop
  // string completes, stopped() is true, text() ends before it and further tokens are ignored.
  std::string Push(int64_t token);
  // End of generation: returns the held-back rest (nothing after a stop string).
  std::string Finish();

  bool stopped() const { return stopped_; }
  // The text so far, truncated before a stop string (includes held-back text).
  const std::string& text() const { return text_; }

 private:
  std::string Take(size_t end);
  std::string Scan(size_t before);

  std::unique_ptr<PerceptionLMProcessor::StreamDecoder> decoder_;
  std::vector<std::string> stops_;
  std::string text_;
  size_t emitted_ = 0;
  bool stopped_ = false;
};

}  // namespace plm
