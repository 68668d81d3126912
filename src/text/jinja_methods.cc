// Attribute, item and slice access, str/dict methods and global functions.
#include <ctime>

#include "text/jinja_builtins.h"
#include "text/python_string.h"
#include "text/unicode_props.h"
#include "text/utf8.h"

namespace plm::jinja {

namespace {

std::string ObjName(const Value& v) {
  return v.TypeName() + " object";
}

std::optional<std::string> OptString(const Value& v, const char* what) {
  if (v.is_undefined() || v.is_none()) return std::nullopt;
  if (!v.is_string()) throw TemplateError{std::string(what) + " arg must be None or str"};
  return v.as_string();
}

// Python's sequence index normalisation; false when out of range.
bool NormalizeIndex(int64_t* i, int64_t len) {
  if (*i < 0) *i += len;
  return *i >= 0 && *i < len;
}

Value StringMethod(const std::string& s, const std::string& name) {
  auto fn = [name](auto body) { return Value::Function(name, body); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return fn([s, name](CallArgs& a) {
      ArgReader r(a, name);
      r.CheckNoMore(1, {"chars"});
      return Value(PyStrip(s, OptString(r.Get(0, "chars"), name.c_str()), name != "rstrip",
                           name != "lstrip"));
    });
  }
  if (name == "upper") return fn([s](CallArgs&) { return Value(PyUpper(s)); });
  if (name == "lower") return fn([s](CallArgs&) { return Value(PyLower(s)); });
  if (name == "title") return fn([s](CallArgs&) { return Value(PyTitle(s)); });
  if (name == "capitalize") return fn([s](CallArgs&) { return Value(PyCapitalize(s)); });
  if (name == "split" || name == "rsplit") {
    return fn([s, name](CallArgs& a) {
      ArgReader r(a, name);
      r.CheckNoMore(2, {"sep", "maxsplit"});
      const auto sep = OptString(r.Get(0, "sep"), "sep");
      if (sep && sep->empty()) throw TemplateError{"empty separator"};
      const Value m = r.Get(1, "maxsplit", Value(int64_t{-1}));
      std::vector<std::string> parts;
      if (name == "rsplit" && m.as_int() >= 0) {
        // rsplit with a limit splits from the right: reverse, split, reverse back.
        auto rev = [](const std::string& x) {
          std::u32string u = ToU32(x);
          std::reverse(u.begin(), u.end());
          return FromU32(u);
        };
        parts =
            PySplit(rev(s), sep ? std::optional<std::string>(rev(*sep)) : std::nullopt, m.as_int());
        for (auto& p : parts) p = rev(p);
        std::reverse(parts.begin(), parts.end());
      } else {
        parts = PySplit(s, sep, m.as_int());
      }
      std::vector<Value> out;
      for (auto& p : parts) out.emplace_back(std::move(p));
      return Value::List(std::move(out));
    });
  }
  if (name == "startswith" || name == "endswith") {
    return fn([s, name](CallArgs& a) {
      ArgReader r(a, name);
      r.CheckNoMore(1, {});
      const Value arg = r.Get(0, "prefix");
      std::vector<Value> options = arg.is_tuple() ? arg.items() : std::vector<Value>{arg};
      for (const Value& o : options) {
        if (!o.is_string())
          throw TemplateError{name + " first arg must be str or a tuple of str, not " +
                              o.TypeName()};
        const std::string& p = o.as_string();
        if (p.size() > s.size()) continue;
        if (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                 : s.compare(s.size() - p.size(), p.size(), p) == 0)
          return Value(true);
      }
      return Value(false);
    });
  }
  if (name == "replace") {
    return fn([s](CallArgs& a) {
      ArgReader r(a, "replace");
      r.CheckNoMore(3, {"count"});
      const Value from = r.Get(0, "old"), to = r.Get(1, "new");
      if (!from.is_string() || !to.is_string())
        throw TemplateError{"replace() arguments must be str"};
      int64_t count = r.Get(2, "count", Value(int64_t{-1})).as_int();
      const std::string& f = from.as_string();
      std::string out;
      if (f.empty()) {
        // Python inserts `new` between every character (and at both ends).
        const std::u32string u = ToU32(s);
        for (size_t i = 0; i <= u.size(); ++i) {
          if (count != 0) {
            out += to.as_string();
            --count;
          }
          if (i < u.size()) AppendUtf8(u[i], &out);
        }
        return Value(out);
      }
      size_t pos = 0, hit;
      while (count != 0 && (hit = s.find(f, pos)) != std::string::npos) {
        out.append(s, pos, hit - pos);
        out += to.as_string();
        pos = hit + f.size();
        --count;
      }
      out.append(s, pos, std::string::npos);
      return Value(out);
    });
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    return fn([s, name](CallArgs& a) {
      ArgReader r(a, name);
      const Value sub = r.Get(0, "sub");
      if (!sub.is_string()) throw TemplateError{name + "() argument must be str"};
      const std::string& t = sub.as_string();
      if (name == "count") {
        if (t.empty()) return Value(static_cast<int64_t>(PyLen(s) + 1));
        int64_t n = 0;
        for (size_t p = s.find(t); p != std::string::npos; p = s.find(t, p + t.size())) ++n;
        return Value(n);
      }
      const size_t hit = name == "rfind" ? s.rfind(t) : s.find(t);
      if (hit == std::string::npos) {
        if (name == "index") throw TemplateError{"substring not found"};
        return Value(int64_t{-1});
      }
      return Value(static_cast<int64_t>(PyLen(s.substr(0, hit))));
    });
  }
  if (name == "join") {
    return fn([s](CallArgs& a) {
      ArgReader r(a, "join");
      std::string out;
      bool first = true;
      for (const Value& v : Iterate(r.Get(0, "iterable"))) {
        if (!v.is_string())
          throw TemplateError{"sequence item: expected str instance, " + v.TypeName() + " found"};
        if (!first) out += s;
        first = false;
        out += v.as_string();
      }
      return Value(out);
    });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    return fn([s, name](CallArgs& a) {
      ArgReader r(a, name);
      const Value x = r.Get(0, "affix");
      if (!x.is_string()) throw TemplateError{name + "() argument must be str"};
      const std::string& p = x.as_string();
      if (p.size() > s.size()) return Value(s);
      if (name == "removeprefix")
        return Value(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
      return Value(
          s.compare(s.size() - p.size(), p.size(), p) == 0 ? s.substr(0, s.size() - p.size()) : s);
    });
  }
  if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum" ||
      name == "islower" || name == "isupper") {
    return fn([s, name](CallArgs&) {
      const std::u32string u = ToU32(s);
      if (u.empty()) return Value(false);
      bool any_cased = false;
      for (char32_t c : u) {
        bool ok = true;
        if (name == "isdigit")
          ok = c >= '0' && c <= '9';
        else if (name == "isspace")
          ok = IsPythonSpace(c);
        else if (name == "isalpha")
          ok = IsCased(c) || (IsRegexWordChar(c) && !(c >= U'0' && c <= U'9') && c != U'_');
        else if (name == "isalnum")
          ok = IsRegexWordChar(c) && c != '_';
        else if (name == "islower") {
          if (IsCased(c)) {
            any_cased = true;
            ok = ToLowerCase(c) == c;
          }
        } else if (name == "isupper") {
          if (IsCased(c)) {
            any_cased = true;
            ok = ToUpperCase(c) == c;
          }
        }
        if (!ok) return Value(false);
      }
      if (name == "islower" || name == "isupper") return Value(any_cased);
      return Value(true);
    });
  }
  return Value::Undefined("'str object' has no attribute '" + name + "'");
}

Value DictMethod(const Value& d, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return Value::Function(name, [d, name](CallArgs&) {
      std::vector<Value> out;
      for (const auto& [k, v] : d.dict().items()) {
        if (name == "items")
          out.push_back(Value::List({Value(k), v}, /*is_tuple=*/true));
        else if (name == "keys")
          out.emplace_back(k);
        else
          out.push_back(v);
      }
      return Value::List(std::move(out));
    });
  }
  if (name == "get") {
    return Value::Function("get", [d](CallArgs& a) {
      ArgReader r(a, "get");
      const Value key = r.Get(0, "key");
      if (key.is_string())
        if (const Value* v = d.dict().Find(key.as_string())) return *v;
      return r.Get(1, "default", Value::None());
    });
  }
  if (name == "copy")
    return Value::Function(
        "copy", [d](CallArgs&) { return Value::Dict(std::make_shared<ValueDict>(d.dict())); });
  return Value();
}

bool IsMutatingMethod(const Value& obj, const std::string& name) {
  if (obj.is_list() && !obj.is_tuple())
    return name == "append" || name == "extend" || name == "insert" || name == "pop" ||
           name == "remove" || name == "clear" || name == "sort" || name == "reverse";
  if (obj.is_dict() && !obj.is_namespace())
    return name == "update" || name == "pop" || name == "popitem" || name == "clear" ||
           name == "setdefault";
  return false;
}

}  // namespace

void ThrowUndefined(const Value& v) {
  throw TemplateError{v.undefined_hint().empty() ? "undefined value" : v.undefined_hint()};
}

Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  if (IsMutatingMethod(obj, name)) {
    return Value::Function(name, [name, type = obj.TypeName()](CallArgs&) -> Value {
      throw TemplateError{"access to attribute '" + name + "' of '" + type + "' object is unsafe."};
    });
  }
  if (obj.is_string()) {
    Value m = StringMethod(obj.as_string(), name);
    if (!m.is_undefined()) return m;
  }
  if (obj.is_dict()) {
    if (!obj.is_namespace()) {
      Value m = DictMethod(obj, name);
      if (!m.is_undefined()) return m;
    }
    if (const Value* v = obj.dict().Find(name)) return *v;
  }
  return Value::Undefined("'" + ObjName(obj) + "' has no attribute '" + name + "'");
}

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  if ((obj.is_list() || obj.is_string()) && key.is_number() && !key.is_float()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      if (NormalizeIndex(&i, static_cast<int64_t>(obj.items().size())))
        return obj.items()[static_cast<size_t>(i)];
    } else {
      const std::u32string u = ToU32(obj.as_string());
      if (NormalizeIndex(&i, static_cast<int64_t>(u.size())))
        return Value(FromU32(std::u32string_view(u).substr(static_cast<size_t>(i), 1)));
    }
    return Value::Undefined("'" + ObjName(obj) + "' has no element " + ToStr(key));
  }
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.dict().Find(key.as_string())) return *v;
  }
  if (key.is_string()) return GetAttr(obj, key.as_string());
  return Value::Undefined("'" + ObjName(obj) + "' has no element " + Repr(key));
}

Value GetSlice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  auto opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_number() || v.is_float())
      throw TemplateError{std::string("slice ") + what + " must be an integer or None"};
    return v.as_int();
  };
  const auto st = opt(step, "step");
  const int64_t k = st.value_or(1);
  if (k == 0) throw TemplateError{"slice step cannot be zero"};
  const bool is_str = obj.is_string();
  // jinja2 compiles slices to plain Python subscripts, so these fail like Python.
  if (obj.is_dict()) throw TemplateError{"unhashable type: 'slice'"};
  if (!is_str && !obj.is_list())
    throw TemplateError{"'" + obj.TypeName() + "' object is not subscriptable"};
  const std::u32string u = is_str ? ToU32(obj.as_string()) : std::u32string();
  const int64_t len =
      is_str ? static_cast<int64_t>(u.size()) : static_cast<int64_t>(obj.items().size());
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t def_pos, int64_t def_neg) {
    if (!v) return k > 0 ? def_pos : def_neg;
    int64_t x = *v;
    if (x < 0) {
      x += len;
      if (x < 0) x = k < 0 ? -1 : 0;
    } else if (x >= len) {
      x = k < 0 ? len - 1 : len;
    }
    return x;
  };
  const int64_t b = adjust(opt(start, "start"), 0, len - 1);
  const int64_t e = adjust(opt(stop, "stop"), len, -1);
  std::vector<Value> items;
  std::u32string chars;
  for (int64_t i = b; k > 0 ? i < e : i > e; i += k) {
    if (is_str)
      chars.push_back(u[static_cast<size_t>(i)]);
    else
      items.push_back(obj.items()[static_cast<size_t>(i)]);
  }
  if (is_str) return Value(FromU32(chars));
  return Value::List(std::move(items), obj.is_tuple());
}

Value ArgReader::Get(size_t position, const char* name, Value def) const {
  for (const auto& [k, v] : args_.keyword)
    if (k == name) return v;
  if (position < args_.positional.size()) return args_.positional[position];
  return def;
}

void ArgReader::CheckNoMore(size_t count, std::initializer_list<const char*> names) const {
  if (args_.positional.size() > count)
    throw TemplateError{fn_ + "() takes at most " + std::to_string(count) + " argument(s) (" +
                        std::to_string(args_.positional.size()) + " given)"};
  for (const auto& [k, v] : args_.keyword) {
    bool known = false;
    for (const char* n : names) known = known || k == n;
    if (!known) throw TemplateError{fn_ + "() got an unexpected keyword argument '" + k + "'"};
  }
}

Value LookupGlobal(const std::string& name) {
  if (name == "raise_exception") {
    return Value::Function(name, [](CallArgs& a) -> Value {
      const std::string msg = a.positional.empty() ? "" : ToStr(a.positional[0]);
      throw TemplateError{msg, 0, /*raised=*/true};
    });
  }
  if (name == "range") {
    return Value::Function(name, [](CallArgs& a) {
      if (a.positional.empty() || a.positional.size() > 3)
        throw TemplateError{"range expected 1 to 3 arguments"};
      for (const Value& v : a.positional)
        if (!v.is_number() || v.is_float())
          throw TemplateError{"'" + v.TypeName() + "' object cannot be interpreted as an integer"};
      int64_t start = 0, stop, step = 1;
      if (a.positional.size() == 1) {
        stop = a.positional[0].as_int();
      } else {
        start = a.positional[0].as_int();
        stop = a.positional[1].as_int();
        if (a.positional.size() == 3) step = a.positional[2].as_int();
      }
      if (step == 0) throw TemplateError{"range() arg 3 must not be zero"};
      std::vector<Value> out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        // The sandbox refuses ranges above 100000 items (MAX_RANGE).
        if (out.size() >= 100000)
          throw TemplateError{
              "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."};
        out.emplace_back(i);
      }
      return Value::List(std::move(out));
    });
  }
  if (name == "dict" || name == "namespace") {
    return Value::Function(name, [name](CallArgs& a) {
      auto d = std::make_shared<ValueDict>();
      for (const Value& p : a.positional) {
        if (!p.is_dict()) throw TemplateError{name + "() positional argument must be a mapping"};
        for (const auto& [k, v] : p.dict().items()) d->Set(k, v);
      }
      for (const auto& [k, v] : a.keyword) d->Set(k, v);
      return Value::Dict(std::move(d), name == "namespace");
    });
  }
  if (name == "strftime_now") {
    return Value::Function(name, [](CallArgs& a) {
      ArgReader r(a, "strftime_now");
      const Value f = r.Get(0, "format");
      if (!f.is_string()) throw TemplateError{"strftime_now() format must be a string"};
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[512];
      const size_t n = std::strftime(buf, sizeof(buf), f.as_string().c_str(), &tm);
      return Value(std::string(buf, n));
    });
  }
  return Value::Undefined("'" + name + "' is undefined");
}

}  // namespace plm::jinja
