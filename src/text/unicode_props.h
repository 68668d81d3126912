// Unicode character properties the text layer needs outside of regex matching.
#pragma once

namespace plm {

// Unicode White_Space (what Rust's regex \s and onig's \s match).
bool IsUnicodeWhiteSpace(char32_t cp);
// Python's str.isspace(): White_Space plus the ASCII separators U+001C..U+001F.
bool IsPythonSpace(char32_t cp);
// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool IsRegexWordChar(char32_t cp);
// Python's str.isprintable() for one character: not in categories Cc, Cf, Cs, Co, Cn, Zl, Zp,
// and not a space separator other than U+0020.
bool IsPythonPrintable(char32_t cp);
// Simple (one-to-one) Unicode case mappings.
char32_t ToUpperCase(char32_t cp);
char32_t ToLowerCase(char32_t cp);
// Cased letters (categories Lu, Ll, Lt), for Python's title().
bool IsCased(char32_t cp);

}  // namespace plm
