#include "text/python_string.h"

#include <charconv>
#include <cmath>

#include "text/unicode_props.h"
#include "text/utf8.h"

namespace plm {

std::u32string ToU32(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  size_t pos = 0;
  while (pos < utf8.size()) {
    if (Utf8SequenceLength(utf8, pos) == 0) {
      out.push_back(0xFFFD);
      ++pos;
      continue;
    }
    out.push_back(DecodeUtf8(utf8, &pos));
  }
  return out;
}

std::string FromU32(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(c, &out);
  return out;
}

std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right) {
  const std::u32string u = ToU32(s);
  const std::u32string set = chars ? ToU32(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) {
    return chars ? set.find(c) != std::u32string::npos : IsPythonSpace(c);
  };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_it(u[b])) ++b;
  if (right)
    while (e > b && strip_it(u[e - 1])) --e;
  return FromU32(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) return {std::string(s)};  // Python raises; callers check first
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string u = ToU32(s);
  size_t i = 0;
  while (i < u.size()) {
    while (i < u.size() && IsPythonSpace(u[i])) ++i;
    if (i >= u.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t e = u.size();
      while (e > i && IsPythonSpace(u[e - 1])) --e;
      out.push_back(FromU32(std::u32string_view(u).substr(i, e - i)));
      break;
    }
    size_t j = i;
    while (j < u.size() && !IsPythonSpace(u[j])) ++j;
    out.push_back(FromU32(std::u32string_view(u).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::string PyUpper(std::string_view s) {
  std::u32string u = ToU32(s);
  for (char32_t& c : u) c = ToUpperCase(c);
  return FromU32(u);
}

std::string PyLower(std::string_view s) {
  std::u32string u = ToU32(s);
  for (char32_t& c : u) c = ToLowerCase(c);
  return FromU32(u);
}

std::string PyTitle(std::string_view s) {
  std::u32string u = ToU32(s);
  bool prev_cased = false;
  for (char32_t& c : u) {
    const bool cased = IsCased(c);
    c = prev_cased ? ToLowerCase(c) : ToUpperCase(c);
    prev_cased = cased;
  }
  return FromU32(u);
}

std::string PyCapitalize(std::string_view s) {
  std::u32string u = ToU32(s);
  for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? ToUpperCase(u[i]) : ToLowerCase(u[i]);
  return FromU32(u);
}

std::string PyRepr(std::string_view s) {
  const std::u32string u = ToU32(s);
  const bool has_single = u.find(U'\'') != std::u32string::npos;
  const bool has_double = u.find(U'"') != std::u32string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  static const char* hex = "0123456789abcdef";
  for (char32_t c : u) {
    if (c == static_cast<char32_t>(quote) || c == U'\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\r') {
      out += "\\r";
    } else if (c == U'\t') {
      out += "\\t";
    } else if (!IsPythonPrintable(c)) {
      const int digits = c < 0x100 ? 2 : c < 0x10000 ? 4 : 8;
      out += digits == 2 ? "\\x" : digits == 4 ? "\\u" : "\\U";
      for (int i = digits - 1; i >= 0; --i) out += hex[(c >> (4 * i)) & 15];
    } else {
      AppendUtf8(c, &out);
    }
  }
  out += quote;
  return out;
}

std::string PyFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // e.g. "-1.2345e+02"
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out += '-';
    i = 1;
  }
  const size_t epos = sci.find('e');
  std::string digits;
  for (size_t k = i; k < epos; ++k)
    if (sci[k] != '.') digits += sci[k];
  const int exp10 = std::stoi(sci.substr(epos + 1));
  const int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  const int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= n) {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." +
             digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits[0];
  if (n > 1) out += "." + digits.substr(1);
  const int e = decpt - 1;
  out += e < 0 ? "e-" : "e+";
  const std::string ed = std::to_string(e < 0 ? -e : e);
  if (ed.size() < 2) out += '0';
  out += ed;
  return out;
}

size_t PyLen(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

}  // namespace plm
