// UTF-8 helpers shared by the tokenizer, the streaming decoder and the Jinja interpreter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace plm {

// Length of the valid UTF-8 sequence starting at s[pos], or 0 when the bytes there are not a
// complete well-formed sequence (overlongs, surrogates and values above U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s, size_t pos);

// Throws plm::Error(kInvalidArgument) naming `what` and the byte offset of the first invalid
// sequence. Prompts must be valid UTF-8: Hugging Face receives Python strings, which cannot hold
// invalid bytes, so there is no reference behaviour to imitate.
void ValidateUtf8(std::string_view s, const std::string& what);
bool IsValidUtf8(std::string_view s);

// Decodes the code point of the valid sequence at s[pos] (callers validated first) and advances
// pos past it.
char32_t DecodeUtf8(std::string_view s, size_t* pos);
void AppendUtf8(char32_t cp, std::string* out);

// Rust's String::from_utf8_lossy, which the tokenizers ByteLevel decoder uses: each maximal
// invalid subpart becomes one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

// Number of leading bytes of `bytes` that can be decoded now without changing the meaning of
// what may follow: everything except a trailing truncated-but-so-far-valid sequence.
size_t Utf8StablePrefix(std::string_view bytes);

}  // namespace plm
