// Incremental detokenization for streaming generation output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace plm {

class Tokenizer;

// Takes generated ids one at a time and returns only text that can no longer change: never a
// broken UTF-8 sequence (bytes of a character split across tokens are held until complete).
// The concatenation of every Put() result followed by Flush() equals
// tokenizer.Decode(all ids, skip_special_tokens, clean_up_tokenization_spaces) exactly.
// When the cleanup is in effect (not the default for BPE tokenizers, see Tokenizer::Decode),
// text is also held back until the last three characters are not spaces, since the cleanup
// rules (" ." -> ".", " n't" -> "n't", ...) reach at most three characters past a space.
// The tokenizer must outlive the decoder.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true,
                            std::optional<bool> clean_up_tokenization_spaces = std::nullopt);

  // Appends one id; returns the newly final text (often empty). Negative ids throw
  // kInvalidArgument; ids without a token are skipped, as in Decode.
  std::string Put(int32_t id);
  // Returns everything still held back (an unfinished character becomes U+FFFD, as Decode
  // shows it) and resets the decoder.
  std::string Flush();
  void Reset();

 private:
  std::string TakeSafeText();

  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  bool clean_up_;
  std::string bytes_;  // raw bytes not yet decoded (a truncated UTF-8 sequence at most)
  std::string text_;   // decoded text held back for the cleanup
};

}  // namespace plm
