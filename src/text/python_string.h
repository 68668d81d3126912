// Python str semantics the Jinja interpreter needs (HF renders chat templates with Python's
// jinja2, so strings behave as Python strings: indexing by code point, Unicode-aware strip,
// repr quoting, float formatting).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plm {

std::u32string ToU32(std::string_view utf8);
std::string FromU32(std::u32string_view s);

// str.strip / lstrip / rstrip; `chars` absent strips Python whitespace.
std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right);
// str.split(sep, maxsplit); sep absent splits on runs of whitespace.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit);
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyTitle(std::string_view s);
std::string PyCapitalize(std::string_view s);
// repr() of a str: quotes chosen as Python does, non-printable characters escaped.
std::string PyRepr(std::string_view s);
// repr()/str() of a float: shortest round-trip digits, Python's fixed/scientific switch.
std::string PyFloatRepr(double v);
// Number of code points.
size_t PyLen(std::string_view s);

}  // namespace plm
