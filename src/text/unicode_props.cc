#include "text/unicode_props.h"

#include <locale.h>
#include <wctype.h>

#include <string>

#include "text/unicode_regex.h"
#include "text/utf8.h"

namespace plm {

namespace {

// Category tests for non-ASCII code points go through PCRE2's Unicode tables, so the whole text
// layer agrees on one Unicode version.
bool MatchesClass(const UnicodeRegex& re, char32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  std::string s;
  AppendUtf8(cp, &s);
  return re.MatchesAt(s, 0);
}

locale_t Utf8Locale() {
  static locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (l == static_cast<locale_t>(0)) l = newlocale(LC_CTYPE_MASK, "C", static_cast<locale_t>(0));
    return l;
  }();
  return loc;
}

}  // namespace

bool IsUnicodeWhiteSpace(char32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
  switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool IsPythonSpace(char32_t cp) {
  return IsUnicodeWhiteSpace(cp) || (cp >= 0x1C && cp <= 0x1F);
}

bool IsRegexWordChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           cp == '_';
  }
  static const UnicodeRegex re("[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200c}\\x{200d}]",
                               "word-character class");
  return MatchesClass(re, cp);
}

bool IsPythonPrintable(char32_t cp) {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
  static const UnicodeRegex re("[\\p{Cc}\\p{Cf}\\p{Cs}\\p{Co}\\p{Cn}\\p{Zl}\\p{Zp}\\p{Zs}]",
                               "non-printable class");
  return !MatchesClass(re, cp);
}

bool IsCased(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  static const UnicodeRegex re("[\\p{Lu}\\p{Ll}\\p{Lt}]", "cased-letter class");
  return MatchesClass(re, cp);
}

char32_t ToUpperCase(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  return static_cast<char32_t>(towupper_l(static_cast<wint_t>(cp), Utf8Locale()));
}

char32_t ToLowerCase(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return static_cast<char32_t>(towlower_l(static_cast<wint_t>(cp), Utf8Locale()));
}

}  // namespace plm
