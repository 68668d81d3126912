// The GPT-2 byte-level alphabet: every byte maps to one printable code point so that BPE
// vocabularies can be stored as text. Byte-level tokenizers (Llama 3, GPT-2, Qwen) store their
// vocabulary in this alphabet.
#pragma once

#include <string>
#include <string_view>

namespace plm {

// UTF-8 of the code point that stands for byte `b`.
const std::string& ByteLevelChar(unsigned char b);
// The byte a code point stands for, or -1 when it is not in the alphabet.
int ByteLevelByte(char32_t cp);

// Maps raw bytes to their alphabet string (what HF shows as token strings).
std::string ByteLevelEncode(std::string_view bytes);
// Inverse of ByteLevelEncode for one token string, as the tokenizers ByteLevel decoder does it:
// when any character is outside the alphabet the token's own UTF-8 bytes are used unchanged.
// Returns false in that case (the bytes are still appended).
bool ByteLevelDecodeToken(std::string_view token, std::string* out);

}  // namespace plm
