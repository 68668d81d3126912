// Jinja's built-in filters and tests (the subset chat templates use), with transformers'
// tojson (no HTML escaping, keys in insertion order, optional indent).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <unordered_map>

#include "text/jinja_builtins.h"
#include "text/python_string.h"
#include "text/unicode_props.h"

namespace plm::jinja {

namespace {

using FilterFn = std::function<Value(const Value&, CallArgs&)>;
using TestFn = std::function<bool(const Value&, CallArgs&)>;

// Jinja's do_title (not Python's str.title): words start after whitespace or one of -({[<,
// their first character is upper-cased and the rest lower-cased.
std::string JinjaTitle(const std::string& s) {
  const std::u32string u = ToU32(s);
  std::u32string out;
  bool word_start = true;
  for (char32_t c : u) {
    const bool sep = c == U'-' || c == U'(' || c == U'{' || c == U'[' || c == U'<' ||
                     (c < 0x80 ? (c == U' ' || (c >= 9 && c <= 13)) : IsPythonSpace(c));
    if (sep) {
      out.push_back(c);
      word_start = true;
    } else {
      out.push_back(word_start ? ToUpperCase(c) : ToLowerCase(c));
      word_start = false;
    }
  }
  return FromU32(out);
}

// Jinja's make_attrgetter: "a.b.0" walks attributes/items; integer parts index.
Value GetPath(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = numeric ? GetItem(cur, Value(static_cast<int64_t>(std::stoll(part))))
                  : GetItem(cur, Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// int(x) of a float; NaN and values beyond 64 bits give the filter's default.
Value DoubleToInt(double d, const Value& def) {
  if (!(d > -9.2e18 && d < 9.2e18)) return def;
  return Value(static_cast<int64_t>(d));
}

Value AttrOrSelf(const Value& v, const Value& attribute) {
  if (attribute.is_undefined() || attribute.is_none()) return v;
  if (attribute.is_string()) return GetPath(v, attribute.as_string());
  return GetItem(v, attribute);
}

// Sort key with Jinja's default case-insensitive string comparison.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(PyLower(v.as_string()));
  return v;
}

CallArgs Rest(const CallArgs& a, size_t from) {
  CallArgs out;
  for (size_t i = from; i < a.positional.size(); ++i) out.positional.push_back(a.positional[i]);
  out.keyword = a.keyword;
  return out;
}

Value SelectOrReject(const Value& seq, CallArgs& a, bool select, bool by_attr) {
  std::vector<Value> out;
  // jinja2 yields nothing for a falsy input (none, "", [], undefined) without checking it.
  if (!seq.Truthy()) return Value::List(std::move(out));
  std::string attr;
  size_t next = 0;
  if (by_attr) {
    if (a.positional.empty() || !a.positional[0].is_string())
      throw TemplateError{"Missing parameter for attribute name"};
    attr = a.positional[0].as_string();
    next = 1;
  }
  const bool has_test = a.positional.size() > next;
  std::string test;
  if (has_test) {
    if (!a.positional[next].is_string()) throw TemplateError{"test name must be a string"};
    test = a.positional[next].as_string();
    if (!HasTest(test)) throw TemplateError{"No test named '" + test + "'."};
  }
  CallArgs test_args = Rest(a, next + 1);
  for (const Value& item : Iterate(seq)) {
    const Value probe = by_attr ? GetPath(item, attr) : item;
    const bool ok = has_test ? ApplyTest(test, probe, test_args) : probe.Truthy();
    if (ok == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}

std::vector<Value> Sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                          const Value& attribute) {
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return Compare(SortKey(AttrOrSelf(x, attribute), case_sensitive),
                   SortKey(AttrOrSelf(y, attribute), case_sensitive)) < 0;
  });
  if (reverse) std::reverse(items.begin(), items.end());
  return items;
}

Value Length(const Value& v) {
  if (v.is_undefined()) return Value(int64_t{0});
  if (v.is_string()) return Value(static_cast<int64_t>(PyLen(v.as_string())));
  if (v.is_list()) return Value(static_cast<int64_t>(v.items().size()));
  if (v.is_dict() && !v.is_namespace()) return Value(static_cast<int64_t>(v.dict().size()));
  throw TemplateError{"object of type '" + v.TypeName() + "' has no len()"};
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

const std::unordered_map<std::string, FilterFn>& Filters() {
  static const auto* filters = new std::unordered_map<std::string, FilterFn>{
      {"trim",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "trim");
         const Value chars = r.Get(0, "chars");
         return Value(PyStrip(
             ToStr(v),
             chars.is_string() ? std::optional<std::string>(chars.as_string()) : std::nullopt, true,
             true));
       }},
      {"upper", [](const Value& v, CallArgs&) { return Value(PyUpper(ToStr(v))); }},
      {"lower", [](const Value& v, CallArgs&) { return Value(PyLower(ToStr(v))); }},
      {"title", [](const Value& v, CallArgs&) { return Value(JinjaTitle(ToStr(v))); }},
      {"capitalize", [](const Value& v, CallArgs&) { return Value(PyCapitalize(ToStr(v))); }},
      {"string", [](const Value& v, CallArgs&) { return Value(ToStr(v)); }},
      {"safe", [](const Value& v, CallArgs&) { return v; }},
      {"escape", [](const Value& v, CallArgs&) { return Value(HtmlEscape(ToStr(v))); }},
      {"length", [](const Value& v, CallArgs&) { return Length(v); }},
      {"wordcount",
       [](const Value& v, CallArgs&) {
         return Value(static_cast<int64_t>(PySplit(ToStr(v), std::nullopt, -1).size()));
       }},
      {"default",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "default");
         const bool boolean = r.Get(1, "boolean", Value(false)).Truthy();
         if (v.is_undefined() || (boolean && !v.Truthy()))
           return r.Get(0, "default_value", Value(std::string()));
         return v;
       }},
      {"first",
       [](const Value& v, CallArgs&) {
         auto items = Iterate(v);
         return items.empty() ? Value::Undefined("No first item, sequence was empty.") : items[0];
       }},
      {"last",
       [](const Value& v, CallArgs&) {
         auto items = Iterate(v);
         return items.empty() ? Value::Undefined("No last item, sequence was empty.")
                              : items.back();
       }},
      {"list", [](const Value& v, CallArgs&) { return Value::List(Iterate(v)); }},
      {"reverse",
       [](const Value& v, CallArgs&) {
         if (v.is_string()) {
           std::u32string u = ToU32(v.as_string());
           std::reverse(u.begin(), u.end());
           return Value(FromU32(u));
         }
         auto items = Iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::List(std::move(items));
       }},
      {"join",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "join");
         const std::string sep = ToStr(r.Get(0, "d", Value(std::string())));
         const Value attribute = r.Get(1, "attribute");
         std::string out;
         bool first = true;
         for (const Value& item : Iterate(v)) {
           if (!first) out += sep;
           first = false;
           out += ToStr(AttrOrSelf(item, attribute));
           if (out.size() > kMaxStringBytes)
             throw TemplateError{"join result too large", 0, false, true};
         }
         return Value(out);
       }},
      {"items",
       [](const Value& v, CallArgs&) {
         if (v.is_undefined()) return Value::List({});
         if (!v.is_dict()) throw TemplateError{"Can only get item pairs from a mapping."};
         std::vector<Value> out;
         for (const auto& [k, x] : v.dict().items())
           out.push_back(Value::List({Value(k), x}, /*is_tuple=*/true));
         return Value::List(std::move(out));
       }},
      {"dictsort",
       [](const Value& v, CallArgs& a) {
         if (!v.is_dict()) throw TemplateError{"dictsort expects a mapping"};
         ArgReader r(a, "dictsort");
         const bool cs = r.Get(0, "case_sensitive", Value(false)).Truthy();
         const std::string by = ToStr(r.Get(1, "by", Value("key")));
         const bool rev = r.Get(2, "reverse", Value(false)).Truthy();
         std::vector<Value> pairs;
         for (const auto& [k, x] : v.dict().items())
           pairs.push_back(Value::List({Value(k), x}, true));
         std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& p, const Value& q) {
           const size_t i = by == "value" ? 1 : 0;
           return Compare(SortKey(p.items()[i], cs), SortKey(q.items()[i], cs)) < 0;
         });
         if (rev) std::reverse(pairs.begin(), pairs.end());
         return Value::List(std::move(pairs));
       }},
      {"sort",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "sort");
         return Value::List(Sorted(Iterate(v), r.Get(0, "reverse", Value(false)).Truthy(),
                                   r.Get(1, "case_sensitive", Value(false)).Truthy(),
                                   r.Get(2, "attribute")));
       }},
      {"unique",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "unique");
         const bool cs = r.Get(0, "case_sensitive", Value(false)).Truthy();
         const Value attribute = r.Get(1, "attribute");
         std::vector<Value> out, seen;
         for (const Value& item : Iterate(v)) {
           const Value key = SortKey(AttrOrSelf(item, attribute), cs);
           bool dup = false;
           for (const Value& s : seen) dup = dup || Equals(s, key);
           if (dup) continue;
           seen.push_back(key);
           out.push_back(item);
         }
         return Value::List(std::move(out));
       }},
      {"min",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "min");
         auto s = Sorted(Iterate(v), false, r.Get(0, "case_sensitive", Value(false)).Truthy(),
                         r.Get(1, "attribute"));
         return s.empty() ? Value::Undefined("No aggregated item, sequence was empty.") : s.front();
       }},
      {"max",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "max");
         auto s = Sorted(Iterate(v), false, r.Get(0, "case_sensitive", Value(false)).Truthy(),
                         r.Get(1, "attribute"));
         return s.empty() ? Value::Undefined("No aggregated item, sequence was empty.") : s.back();
       }},
      {"sum",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "sum");
         const Value attribute = r.Get(0, "attribute");
         Value total = r.Get(1, "start", Value(int64_t{0}));
         for (const Value& item : Iterate(v)) {
           const Value x = AttrOrSelf(item, attribute);
           if (!x.is_number() || !total.is_number())
             throw TemplateError{"unsupported operand type(s) for +: '" + total.TypeName() +
                                 "' and '" + x.TypeName() + "'"};
           int64_t isum = 0;
           if (!(x.is_float() || total.is_float()) &&
               __builtin_add_overflow(total.as_int(), x.as_int(), &isum))
             throw TemplateError{"integer overflow"};
           total = (x.is_float() || total.is_float()) ? Value(total.as_double() + x.as_double())
                                                      : Value(isum);
         }
         return total;
       }},
      {"abs",
       [](const Value& v, CallArgs&) {
         if (v.is_float()) return Value(std::fabs(v.as_double()));
         if (v.is_number()) {
           if (v.as_int() == INT64_MIN) throw TemplateError{"integer overflow"};
           return Value(static_cast<int64_t>(std::llabs(v.as_int())));
         }
         throw TemplateError{"bad operand type for abs(): '" + v.TypeName() + "'"};
       }},
      {"int",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "int");
         const Value def = r.Get(0, "default", Value(int64_t{0}));
         if (v.is_number())
           return v.is_float() ? DoubleToInt(v.as_double(), def) : Value(v.as_int());
         if (v.is_string()) {
           const std::string s = PyStrip(v.as_string(), std::nullopt, true, true);
           try {
             size_t used = 0;
             const long long x = std::stoll(s, &used, 10);
             if (used == s.size()) return Value(static_cast<int64_t>(x));
             const double d = std::stod(s, &used);
             if (used == s.size()) return DoubleToInt(d, def);
           } catch (const std::exception&) {
           }
         }
         return def;
       }},
      {"float",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "float");
         const Value def = r.Get(0, "default", Value(0.0));
         if (v.is_number()) return Value(v.as_double());
         if (v.is_string()) {
           try {
             size_t used = 0;
             const std::string s = PyStrip(v.as_string(), std::nullopt, true, true);
             const double d = std::stod(s, &used);
             if (used == s.size()) return Value(d);
           } catch (const std::exception&) {
           }
         }
         return def;
       }},
      {"round",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "round");
         const int64_t precision = r.Get(0, "precision", Value(int64_t{0})).as_int();
         const std::string method = ToStr(r.Get(1, "method", Value("common")));
         const double x = v.as_double();
         if (method == "common") {
           // Python's round(): correctly rounded, ties to even; printf rounds the same way.
           char buf[512];
           std::snprintf(buf, sizeof(buf), "%.*f",
                         static_cast<int>(std::clamp<int64_t>(precision, 0, 300)), x);
           return Value(std::strtod(buf, nullptr));
         }
         const double scale = std::pow(10.0, static_cast<double>(precision));
         const double y = method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale);
         return Value(y / scale);
       }},
      {"replace",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "replace");
         CallArgs m;
         m.positional = {r.Get(0, "old"), r.Get(1, "new")};
         const Value count = r.Get(2, "count");
         if (!count.is_undefined() && !count.is_none()) m.positional.push_back(count);
         return GetAttr(Value(ToStr(v)), "replace").callable().fn(m);
       }},
      {"indent",
       [](const Value& v, CallArgs& a) {
         // Jinja 3.1's do_indent, including its trailing-newline quirk.
         ArgReader r(a, "indent");
         const Value w = r.Get(0, "width", Value(int64_t{4}));
         const std::string pad =
             w.is_string() ? w.as_string() : std::string(static_cast<size_t>(w.as_int()), ' ');
         const bool first = r.Get(1, "first", Value(false)).Truthy();
         const bool blank = r.Get(2, "blank", Value(false)).Truthy();
         const std::string s = ToStr(v) + "\n";
         std::vector<std::string> lines;
         size_t start = 0;
         for (size_t i = 0; i < s.size(); ++i) {
           if (s[i] == '\n' || s[i] == '\r') {
             lines.push_back(s.substr(start, i - start));
             if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
             start = i + 1;
           }
         }
         if (start < s.size()) lines.push_back(s.substr(start));
         std::string rv;
         for (size_t i = 0; i < lines.size(); ++i) {
           if (i) rv += "\n";
           if (i && (blank || !lines[i].empty())) rv += pad;
           rv += lines[i];
         }
         if (first) rv = pad + rv;
         return Value(rv);
       }},
      {"attr",
       [](const Value& v, CallArgs& a) {
         // Attributes only: a dict's keys are items, not attributes.
         ArgReader r(a, "attr");
         const std::string name = ToStr(r.Get(0, "name"));
         if (v.is_dict() && !v.is_namespace()) {
           const Value m = GetAttr(v, name);
           return m.is_callable()
                      ? m
                      : Value::Undefined("'dict object' has no attribute '" + name + "'");
         }
         return GetAttr(v, name);
       }},
      {"map",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "map");
         std::vector<Value> out;
         if (!v.Truthy()) return Value::List(std::move(out));  // as jinja2's `if value:`
         bool has_attr = false;
         Value attribute, def;
         for (const auto& [k, x] : a.keyword) {
           if (k == "attribute") {
             has_attr = true;
             attribute = x;
           } else if (k == "default") {
             def = x;
           }
         }
         if (has_attr) {
           for (const Value& item : Iterate(v)) {
             Value x = AttrOrSelf(item, attribute);
             out.push_back(x.is_undefined() && !def.is_undefined() ? def : x);
           }
           return Value::List(std::move(out));
         }
         if (a.positional.empty() || !a.positional[0].is_string())
           throw TemplateError{"map requires a filter name or attribute="};
         const std::string f = a.positional[0].as_string();
         if (!HasFilter(f)) throw TemplateError{"No filter named '" + f + "'."};
         CallArgs rest = Rest(a, 1);
         for (const Value& item : Iterate(v)) out.push_back(ApplyFilter(f, item, rest));
         return Value::List(std::move(out));
       }},
      {"select", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, true, false); }},
      {"reject", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, false, false); }},
      {"selectattr", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, true, true); }},
      {"rejectattr", [](const Value& v, CallArgs& a) { return SelectOrReject(v, a, false, true); }},
      {"tojson",
       [](const Value& v, CallArgs& a) {
         ArgReader r(a, "tojson");
         const Value indent = r.Get(1, "indent", Value::None());
         const Value seps = r.Get(2, "separators", Value::None());
         const bool sort_keys = r.Get(3, "sort_keys", Value(false)).Truthy();
         const int ind = indent.is_number() ? static_cast<int>(indent.as_int()) : -1;
         std::string item_sep = ind >= 0 ? "," : ", ", key_sep = ": ";
         if (seps.is_list() && seps.items().size() == 2) {
           item_sep = ToStr(seps.items()[0]);
           key_sep = ToStr(seps.items()[1]);
         }
         return Value(ToJsonText(v, ind, sort_keys, item_sep, key_sep));
       }},
  };
  return *filters;
}

bool IsInt(const Value& v) {
  return v.is_int();
}

// Python's str.islower() / isupper(): at least one cased character, all in the given case.
bool CasedAll(const std::string& s, bool upper) {
  bool any = false;
  for (char32_t c : ToU32(s)) {
    if (!IsCased(c)) continue;
    any = true;
    if ((upper ? ToUpperCase(c) : ToLowerCase(c)) != c) return false;
  }
  return any;
}

// Python's value % 2 for the odd/even tests (which fail like Python for non-numbers).
double Mod2(const Value& v) {
  if (v.is_undefined()) ThrowUndefined(v);
  if (v.is_string()) throw TemplateError{"not all arguments converted during string formatting"};
  if (!v.is_number())
    throw TemplateError{"unsupported operand type(s) for %: '" + v.TypeName() + "' and 'int'"};
  if (v.is_float()) {
    const double m = std::fmod(v.as_double(), 2.0);
    return m < 0 ? m + 2.0 : m;
  }
  return static_cast<double>(((v.as_int() % 2) + 2) % 2);
}

const std::unordered_map<std::string, TestFn>& Tests() {
  auto cmp = [](std::function<bool(int)> ok) {
    return [ok](const Value& v, CallArgs& a) {
      ArgReader r(a, "compare");
      return ok(Compare(v, r.Get(0, "other")));
    };
  };
  auto eq = [](const Value& v, CallArgs& a) {
    return Equals(v, ArgReader(a, "eq").Get(0, "other"));
  };
  auto ne = [](const Value& v, CallArgs& a) {
    return !Equals(v, ArgReader(a, "ne").Get(0, "other"));
  };
  static const auto* tests = new std::unordered_map<std::string, TestFn>{
      {"defined", [](const Value& v, CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, CallArgs&) { return v.is_none(); }},
      {"boolean", [](const Value& v, CallArgs&) { return v.is_bool(); }},
      {"true", [](const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"string", [](const Value& v, CallArgs&) { return v.is_string(); }},
      {"number", [](const Value& v, CallArgs&) { return v.is_number(); }},
      {"integer", [](const Value& v, CallArgs&) { return IsInt(v); }},
      {"float", [](const Value& v, CallArgs&) { return v.is_float(); }},
      {"mapping", [](const Value& v, CallArgs&) { return v.is_dict() && !v.is_namespace(); }},
      {"sequence",
       [](const Value& v, CallArgs&) {
         return v.is_list() || v.is_string() || (v.is_dict() && !v.is_namespace());
       }},
      {"iterable",
       [](const Value& v, CallArgs&) {
         return v.is_list() || v.is_string() || v.is_undefined() ||
                (v.is_dict() && !v.is_namespace());
       }},
      {"callable", [](const Value& v, CallArgs&) { return v.is_callable(); }},
      {"odd", [](const Value& v, CallArgs&) { return Mod2(v) == 1.0; }},
      {"even", [](const Value& v, CallArgs&) { return Mod2(v) == 0.0; }},
      {"divisibleby",
       [](const Value& v, CallArgs& a) {
         const int64_t n = ArgReader(a, "divisibleby").Get(0, "num").as_int();
         return n != 0 && (n == -1 || v.as_int() % n == 0);
       }},
      {"lower", [](const Value& v, CallArgs&) { return CasedAll(ToStr(v), false); }},
      {"upper", [](const Value& v, CallArgs&) { return CasedAll(ToStr(v), true); }},
      {"sameas",
       [](const Value& v, CallArgs& a) {
         const Value o = ArgReader(a, "sameas").Get(0, "other");
         if (v.is_none() || v.is_bool() || o.is_none() || o.is_bool())
           return v.kind() == o.kind() && Equals(v, o);
         return (v.is_dict() && o.is_dict() && &v.dict() == &o.dict()) ||
                (v.is_list() && o.is_list() && &v.items() == &o.items());
       }},
      {"in",
       [](const Value& v, CallArgs& a) {
         const Value seq = ArgReader(a, "in").Get(0, "seq");
         if (seq.is_string())
           return v.is_string() && seq.as_string().find(v.as_string()) != std::string::npos;
         if (seq.is_dict()) return v.is_string() && seq.dict().Find(v.as_string()) != nullptr;
         for (const Value& x : Iterate(seq))
           if (Equals(x, v)) return true;
         return false;
       }},
      {"eq", eq},
      {"equalto", eq},
      {"==", eq},
      {"ne", ne},
      {"!=", ne},
      {"lt", cmp([](int c) { return c < 0; })},
      {"lessthan", cmp([](int c) { return c < 0; })},
      {"<", cmp([](int c) { return c < 0; })},
      {"le", cmp([](int c) { return c <= 0; })},
      {"<=", cmp([](int c) { return c <= 0; })},
      {"gt", cmp([](int c) { return c > 0; })},
      {"greaterthan", cmp([](int c) { return c > 0; })},
      {">", cmp([](int c) { return c > 0; })},
      {"ge", cmp([](int c) { return c >= 0; })},
      {">=", cmp([](int c) { return c >= 0; })},
  };
  return *tests;
}

const std::string& Canonical(const std::string& name) {
  static const std::unordered_map<std::string, std::string> aliases = {
      {"d", "default"}, {"e", "escape"}, {"count", "length"}};
  auto it = aliases.find(name);
  return it == aliases.end() ? name : it->second;
}

}  // namespace

bool HasFilter(const std::string& name) {
  return Filters().count(Canonical(name)) != 0;
}
bool HasTest(const std::string& name) {
  return Tests().count(name) != 0;
}

Value ApplyFilter(const std::string& name, const Value& input, CallArgs& args) {
  auto it = Filters().find(Canonical(name));
  if (it == Filters().end()) throw TemplateError{"No filter named '" + name + "'."};
  return it->second(input, args);
}

bool ApplyTest(const std::string& name, const Value& input, CallArgs& args) {
  auto it = Tests().find(name);
  if (it == Tests().end()) throw TemplateError{"No test named '" + name + "'."};
  return it->second(input, args);
}

}  // namespace plm::jinja
