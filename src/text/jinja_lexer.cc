#include "text/jinja_lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "text/jinja_value.h"
#include "text/unicode_props.h"
#include "text/utf8.h"

namespace plm::jinja {

namespace {

// \r\n and \r become \n, and one trailing newline is dropped (keep_trailing_newline=False).
std::string NormalizeNewlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out.push_back(src[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Python str.isspace() on the character at pos; returns its byte length or 0.
size_t SpaceAt(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  const size_t n = Utf8SequenceLength(s, pos);
  if (n == 0) return 0;
  size_t p = pos;
  return IsPythonSpace(DecodeUtf8(s, &p)) ? n : 0;
}

size_t SkipSpaces(std::string_view s, size_t pos) {
  while (size_t n = SpaceAt(s, pos)) pos += n;
  return pos;
}

// Python's str.rstrip() (Unicode whitespace).
std::string_view RStrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t b = end - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    if (SpaceAt(s, b) != end - b) break;
    end = b;
  }
  return s.substr(0, end);
}

bool AllSpaces(std::string_view s) {
  if (s.empty()) return false;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t n = SpaceAt(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

int CountLines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> Run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t open = FindOpener(pos);
      if (open == std::string::npos) {
        Emit(TokenKind::kText, src_.substr(pos));
        break;
      }
      const char type = src_[open + 1];  // '{', '%' or '#'
      char sign = 0;
      if (open + 2 < src_.size() && (src_[open + 2] == '-' || src_[open + 2] == '+'))
        sign = src_[open + 2];
      std::string_view text = std::string_view(src_).substr(pos, open - pos);
      if (sign == '-') {
        const std::string_view stripped = RStrip(text);
        pending_newlines_ = CountLines(text.substr(stripped.size()));
        text = stripped;
      } else if (sign != '+' && type != '{') {
        // lstrip_blocks: drop the indentation before a block or comment tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && AllSpaces(text.substr(l_pos))) {
          pending_newlines_ = 0;
          text = text.substr(0, l_pos);
        }
      }
      if (!text.empty()) Emit(TokenKind::kText, std::string(text));
      line_ += CountLines(text) + pending_newlines_;
      pending_newlines_ = 0;
      size_t p = open + 2 + (sign ? 1 : 0);
      if (type == '#') {
        p = LexComment(p);
      } else if (type == '%' && IsRaw(p)) {
        p = LexRaw(p);
      } else {
        p = LexTag(p, type == '%');
      }
      line_starting = p > 0 && src_[p - 1] == '\n';
      pos = p;
    }
    Emit(TokenKind::kEof, "");
    return std::move(tokens_);
  }

 private:
  size_t FindOpener(size_t pos) const {
    while (true) {
      const size_t b = src_.find('{', pos);
      if (b == std::string::npos || b + 1 >= src_.size()) return std::string::npos;
      const char c = src_[b + 1];
      if (c == '{' || c == '%' || c == '#') return b;
      pos = b + 1;
    }
  }

  [[noreturn]] void Fail(const std::string& message) const { throw TemplateError{message, line_}; }

  void Emit(TokenKind kind, std::string text) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  // After "#}": "-#}" eats following whitespace, "#}" eats one newline (trim_blocks).
  size_t LexComment(size_t p) {
    const size_t end = src_.find("#}", p);
    if (end == std::string::npos) Fail("Missing end of comment tag");
    line_ += CountLines(std::string_view(src_).substr(p, end - p));
    size_t after = end + 2;
    const char before = end > p ? src_[end - 1] : 0;
    if (before == '-') {
      const size_t q = SkipSpaces(src_, after);
      line_ += CountLines(std::string_view(src_).substr(after, q - after));
      after = q;
    } else if (before != '+' && after < src_.size() && src_[after] == '\n') {
      ++after;
      ++line_;
    }
    return after;
  }

  bool IsRaw(size_t p) const {
    const size_t q = SkipSpaces(src_, p);
    if (src_.compare(q, 3, "raw") != 0) return false;
    const size_t r = SkipSpaces(src_, q + 3);
    return src_.compare(r, 2, "%}") == 0 || src_.compare(r, 3, "-%}") == 0;
  }

  size_t LexRaw(size_t p) {
    size_t q = SkipSpaces(src_, SkipSpaces(src_, p) + 3);
    if (src_[q] == '-')
      q = SkipSpaces(src_, q + 3);
    else
      q += 2;
    // Find {% endraw %} allowing whitespace control on it.
    size_t search = q;
    while (true) {
      const size_t b = src_.find("{%", search);
      if (b == std::string::npos) Fail("Missing end of raw directive");
      size_t c = b + 2;
      char sign = 0;
      if (c < src_.size() && (src_[c] == '-' || src_[c] == '+')) sign = src_[c++];
      c = SkipSpaces(src_, c);
      if (src_.compare(c, 6, "endraw") == 0) {
        size_t d = SkipSpaces(src_, c + 6);
        size_t after;
        if (src_.compare(d, 3, "+%}") == 0)
          after = d + 3;
        else if (src_.compare(d, 3, "-%}") == 0)
          after = SkipSpaces(src_, d + 3);
        else if (src_.compare(d, 2, "%}") == 0) {
          after = d + 2;
          if (after < src_.size() && src_[after] == '\n') ++after;
        } else {
          search = b + 2;
          continue;
        }
        std::string_view body = std::string_view(src_).substr(q, b - q);
        if (sign == '-') {
          body = RStrip(body);
        } else if (sign != '+') {
          // lstrip_blocks applies to the indentation before {% endraw %} too.
          const size_t nl = body.rfind('\n');
          const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
          const bool begin_ended_line = q > 0 && src_[q - 1] == '\n';
          if ((l_pos > 0 || begin_ended_line) && AllSpaces(body.substr(l_pos)))
            body = body.substr(0, l_pos);
        }
        if (!body.empty()) Emit(TokenKind::kText, std::string(body));
        line_ += CountLines(std::string_view(src_).substr(p, after - p));
        return after;
      }
      search = b + 2;
    }
  }

  // Expression tokens up to the tag end; brackets must balance before an end marker counts.
  size_t LexTag(size_t p, bool block) {
    Emit(block ? TokenKind::kBlockBegin : TokenKind::kVarBegin, "");
    std::vector<char> balance;
    while (true) {
      if (p >= src_.size())
        Fail(block ? "unexpected end of template, expected '%}'"
                   : "unexpected end of template, expected '}}'");
      if (balance.empty()) {
        const size_t end = MatchEnd(p, block);
        if (end != std::string::npos) {
          Emit(block ? TokenKind::kBlockEnd : TokenKind::kVarEnd, "");
          line_ += CountLines(std::string_view(src_).substr(p, end - p));
          return end;
        }
      }
      if (size_t n = SpaceAt(src_, p)) {
        line_ += src_[p] == '\n';
        p += n;
        continue;
      }
      p = LexOne(p, &balance);
    }
  }

  // Position after the end marker at p, or npos.
  size_t MatchEnd(size_t p, bool block) const {
    const char* close = block ? "%}" : "}}";
    if (src_.compare(p, 1, "-") == 0 && src_.compare(p + 1, 2, close) == 0)
      return SkipSpaces(src_, p + 3);
    if (block && src_.compare(p, 1, "+") == 0 && src_.compare(p + 1, 2, close) == 0) return p + 3;
    if (src_.compare(p, 2, close) == 0) {
      size_t after = p + 2;
      if (block && after < src_.size() && src_[after] == '\n') ++after;  // trim_blocks
      return after;
    }
    return std::string::npos;
  }

  size_t LexOne(size_t p, std::vector<char>* balance) {
    const char c = src_[p];
    if (std::isdigit(static_cast<unsigned char>(c))) return LexNumber(p);
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t q = p;
      while (q < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
        ++q;
      Emit(TokenKind::kName, src_.substr(p, q - p));
      return q;
    }
    if (c == '\'' || c == '"') return LexString(p);
    static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        Emit(TokenKind::kOperator, op);
        return p + 2;
      }
    }
    static const std::string kOne = "+-/*%~[](){}><=.:|,;";
    if (kOne.find(c) == std::string::npos) Fail(std::string("unexpected char '") + c + "' in tag");
    if (c == '(' || c == '[' || c == '{') {
      balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance->empty()) Fail(std::string("unexpected '") + c + "'");
      if (balance->back() != c)
        Fail(std::string("unexpected '") + c + "', expected '" + balance->back() + "'");
      balance->pop_back();
    }
    Emit(TokenKind::kOperator, std::string(1, c));
    return p + 1;
  }

  size_t LexNumber(size_t p) {
    auto digits = [&](size_t q) {
      // (\d+_)*\d+
      size_t start = q;
      while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                                 (src_[q] == '_' && q > start && q + 1 < src_.size() &&
                                  std::isdigit(static_cast<unsigned char>(src_[q + 1])))))
        ++q;
      return q;
    };
    auto clean = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    // Prefixed integers.
    if (src_[p] == '0' && p + 1 < src_.size()) {
      const char k = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[p + 1])));
      const int base = k == 'b' ? 2 : k == 'o' ? 8 : k == 'x' ? 16 : 0;
      if (base != 0) {
        size_t q = p + 2;
        while (q < src_.size() &&
               (std::isxdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
          ++q;
        Token t;
        t.kind = TokenKind::kInt;
        errno = 0;
        t.int_value = std::strtoll(clean(src_.substr(p + 2, q - p - 2)).c_str(), nullptr, base);
        if (errno == ERANGE) Fail("integer literal does not fit in 64 bits");
        t.line = line_;
        tokens_.push_back(t);
        return q;
      }
    }
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && std::isdigit(static_cast<unsigned char>(src_[r]))) {
        q = digits(r);
        is_float = true;
      }
    }
    Token t;
    t.line = line_;
    const std::string text = clean(src_.substr(p, q - p));
    if (is_float) {
      t.kind = TokenKind::kFloat;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.kind = TokenKind::kInt;
      errno = 0;
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) Fail("integer literal " + text + " does not fit in 64 bits");
    }
    tokens_.push_back(t);
    return q;
  }

  // Python "unicode-escape" decoding of a string literal body.
  size_t LexString(size_t p) {
    const char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) Fail("unterminated string literal");
      const char c = src_[q];
      if (c == quote) break;
      if (c != '\\' || q + 1 >= src_.size()) {
        line_ += c == '\n';
        out.push_back(c);
        ++q;
        continue;
      }
      const char e = src_[q + 1];
      q += 2;
      auto hex = [&](int n) {
        if (q + static_cast<size_t>(n) > src_.size()) Fail("truncated \\x/\\u escape");
        const std::string h = src_.substr(q, static_cast<size_t>(n));
        for (char d : h)
          if (!std::isxdigit(static_cast<unsigned char>(d))) Fail("invalid \\x/\\u escape");
        q += static_cast<size_t>(n);
        const auto cp = static_cast<char32_t>(std::strtoul(h.c_str(), nullptr, 16));
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) Fail("invalid code point in escape");
        AppendUtf8(cp, &out);
      };
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\n':
          ++line_;
          break;  // line continuation
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++k)
              v = v * 8 + (src_[q++] - '0');
            AppendUtf8(static_cast<char32_t>(v), &out);
          } else {
            out += '\\';  // unknown escapes stay as written
            out += e;
          }
      }
    }
    Emit(TokenKind::kString, std::move(out));
    return q + 1;
  }

  std::string src_;
  std::vector<Token> tokens_;
  int line_ = 1;
  int pending_newlines_ = 0;
};

}  // namespace

std::vector<Token> Lex(std::string_view source) {
  return Lexer(NormalizeNewlines(source)).Run();
}

}  // namespace plm::jinja
