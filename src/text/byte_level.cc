#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace plm {

namespace {

struct Alphabet {
  std::array<std::string, 256> byte_to_char;
  std::array<int, 512> char_to_byte;  // every alphabet code point is below 0x144

  Alphabet() {
    char_to_byte.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the rest are shifted to 256 + n in order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int cp = printable ? b : next++;
      AppendUtf8(static_cast<char32_t>(cp), &byte_to_char[b]);
      char_to_byte[cp] = b;
    }
  }
};

const Alphabet& GetAlphabet() {
  static const Alphabet alphabet;
  return alphabet;
}

}  // namespace

const std::string& ByteLevelChar(unsigned char b) {
  return GetAlphabet().byte_to_char[b];
}

int ByteLevelByte(char32_t cp) {
  return cp < 512 ? GetAlphabet().char_to_byte[cp] : -1;
}

std::string ByteLevelEncode(std::string_view bytes) {
  const Alphabet& a = GetAlphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.byte_to_char[static_cast<unsigned char>(c)];
  return out;
}

bool ByteLevelDecodeToken(std::string_view token, std::string* out) {
  const size_t mark = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    const int b = Utf8SequenceLength(token, pos) == 0 ? -1 : ByteLevelByte(DecodeUtf8(token, &pos));
    if (b < 0) {
      out->resize(mark);
      out->append(token);
      return false;
    }
    out->push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace plm
