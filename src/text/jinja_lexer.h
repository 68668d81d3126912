// Jinja2 lexer with the environment transformers uses for chat templates: trim_blocks and
// lstrip_blocks on, keep_trailing_newline off, "-"/"+" whitespace control, comments, raw blocks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace plm::jinja {

enum class TokenKind {
  kText,        // template data between tags
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,
  kInt,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenKind kind = TokenKind::kEof;
  std::string text;  // data, name, decoded string literal, or operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

// Throws TemplateError (with the line) on unterminated tags, strings or comments.
std::vector<Token> Lex(std::string_view source);

}  // namespace plm::jinja
