#include "text/jinja_value.h"

#include <algorithm>
#include <cmath>

#include "text/python_string.h"
#include "text/utf8.h"

namespace plm::jinja {

const Value* ValueDict::Find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

void ValueDict::Set(const std::string& key, Value v) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    items_[it->second].second = std::move(v);
    return;
  }
  index_[key] = items_.size();
  items_.emplace_back(key, std::move(v));
}

Value Value::Undefined(std::string hint) {
  Value v;
  v.s_ = std::move(hint);
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value::Value(bool b) : kind_(Kind::kBool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::kInt), i_(i) {}
Value::Value(double d) : kind_(Kind::kFloat), d_(d) {}
Value::Value(std::string s) : kind_(Kind::kString), s_(std::move(s)) {}

Value Value::List(std::vector<Value> items, bool is_tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<ValueList>();
  v.list_->items = std::move(items);
  v.list_->is_tuple = is_tuple;
  return v;
}

Value Value::Dict(std::shared_ptr<ValueDict> dict, bool is_namespace) {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::move(dict);
  v.is_namespace_ = is_namespace;
  return v;
}

Value Value::Function(std::string name, NativeFunction fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.fn_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

namespace {

template <typename J>
Value FromAnyJson(const J& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::None();
    case nlohmann::json::value_t::boolean:
      return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return Value(static_cast<int64_t>(j.template get<uint64_t>()));
    case nlohmann::json::value_t::number_float:
      return Value(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromAnyJson(e));
      return Value::List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<ValueDict>();
      for (auto it = j.begin(); it != j.end(); ++it) d->Set(it.key(), FromAnyJson(it.value()));
      return Value::Dict(std::move(d));
    }
    default:
      return Value::None();
  }
}

}  // namespace

Value Value::FromJson(const Json& j) {
  return FromAnyJson(j);
}
Value Value::FromJson(const nlohmann::ordered_json& j) {
  return FromAnyJson(j);
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return d_ != 0.0;
    case Kind::kString:
      return !s_.empty();
    case Kind::kList:
      return !list_->items.empty();
    case Kind::kDict:
      return is_namespace_ || dict_->size() != 0;
    case Kind::kCallable:
      return true;
  }
  return false;
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return list_->is_tuple ? "tuple" : "list";
    case Kind::kDict:
      return is_namespace_ ? "Namespace" : "dict";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

namespace {

std::string DictRepr(const ValueDict& d) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : d.items()) {
    if (!first) out += ", ";
    first = false;
    out += PyRepr(k) + ": " + Repr(v);
  }
  return out + "}";
}

}  // namespace

std::string Repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return PyRepr(v.as_string());
    case Value::Kind::kUndefined:
      return "Undefined";
    default:
      return ToStr(v);
  }
}

std::string ToStr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat:
      return PyFloatRepr(v.as_double());
    case Value::Kind::kString:
      return v.as_string();
    case Value::Kind::kList: {
      std::string out = v.is_tuple() ? "(" : "[";
      const auto& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += Repr(items[i]);
      }
      if (v.is_tuple() && items.size() == 1) out += ",";
      return out + (v.is_tuple() ? ")" : "]");
    }
    case Value::Kind::kDict:
      if (v.is_namespace()) return "<Namespace " + DictRepr(v.dict()) + ">";
      return DictRepr(v.dict());
    case Value::Kind::kCallable:
      return "<function " + v.callable().name + ">";
  }
  return "";
}

bool Equals(const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      // Python: a list never equals a tuple.
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!Equals(a.items()[i], b.items()[i])) return false;
      return true;
    }
    case Value::Kind::kDict: {
      if (a.is_namespace() || b.is_namespace()) return &a.dict() == &b.dict();
      if (a.dict().size() != b.dict().size()) return false;
      for (const auto& [k, v] : a.dict().items()) {
        const Value* other = b.dict().Find(k);
        if (other == nullptr || !Equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kCallable:
      return &a.callable() == &b.callable();
    default:
      return false;
  }
}

int Compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    // Python compares code points; UTF-8 byte order is the same order.
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i])) continue;
      return Compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw TemplateError{"'<' not supported between instances of '" + a.TypeName() + "' and '" +
                      b.TypeName() + "'"};
}

namespace {

void JsonString(const std::string& s, std::string* out) {
  static const char* hex = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(hex[c >> 4]);
          out->push_back(hex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

void JsonDump(const Value& v, int indent, int depth, bool sort_keys, const std::string& item_sep,
              const std::string& key_sep, std::string* out) {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent) * static_cast<size_t>(d), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      *out += "null";
      return;
    case Value::Kind::kBool:
      *out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      *out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      if (std::isnan(d))
        *out += "NaN";
      else if (std::isinf(d))
        *out += d > 0 ? "Infinity" : "-Infinity";
      else
        *out += PyFloatRepr(d);
      return;
    }
    case Value::Kind::kString:
      JsonString(v.as_string(), out);
      return;
    case Value::Kind::kList: {
      if (v.items().empty()) {
        *out += "[]";
        return;
      }
      out->push_back('[');
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i) *out += item_sep;
        newline(depth + 1);
        JsonDump(v.items()[i], indent, depth + 1, sort_keys, item_sep, key_sep, out);
      }
      newline(depth);
      out->push_back(']');
      return;
    }
    case Value::Kind::kDict: {
      if (v.is_namespace())
        throw TemplateError{"Object of type Namespace is not JSON serializable"};
      if (v.dict().size() == 0) {
        *out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.dict().items()) entries.push_back(&e);
      if (sort_keys)
        std::sort(entries.begin(), entries.end(),
                  [](const auto* a, const auto* b) { return a->first < b->first; });
      out->push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) *out += item_sep;
        newline(depth + 1);
        JsonString(entries[i]->first, out);
        *out += key_sep;
        JsonDump(entries[i]->second, indent, depth + 1, sort_keys, item_sep, key_sep, out);
      }
      newline(depth);
      out->push_back('}');
      return;
    }
    case Value::Kind::kUndefined:
    case Value::Kind::kCallable:
      throw TemplateError{"Object of type " + v.TypeName() + " is not JSON serializable"};
  }
}

}  // namespace

std::string ToJsonText(const Value& v, int indent, bool sort_keys, const std::string& item_sep,
                       const std::string& key_sep) {
  std::string out;
  JsonDump(v, indent, 0, sort_keys, item_sep, key_sep, &out);
  return out;
}

std::vector<Value> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kString: {
      std::vector<Value> out;
      const std::string& s = v.as_string();
      if (s.size() > kMaxSequenceItems)
        throw TemplateError{
            "string of " + std::to_string(s.size()) + " bytes is too long to iterate", 0, false,
            true};
      size_t pos = 0;
      while (pos < s.size()) {
        size_t n = Utf8SequenceLength(s, pos);
        if (n == 0) n = 1;
        out.emplace_back(s.substr(pos, n));
        pos += n;
      }
      return out;
    }
    case Value::Kind::kDict: {
      if (v.is_namespace()) break;
      std::vector<Value> out;
      for (const auto& kv : v.dict().items()) out.emplace_back(kv.first);
      return out;
    }
    default:
      break;
  }
  throw TemplateError{"'" + v.TypeName() + "' object is not iterable"};
}

}  // namespace plm::jinja
