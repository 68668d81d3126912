// Values of the Jinja interpreter, with Python semantics (HF renders chat templates with
// Python's jinja2): truthiness, str()/repr(), equality and ordering, JSON conversion.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/json.h"

namespace plm::jinja {

class Value;
struct CallArgs;
struct ValueList;
class ValueDict;
struct Callable;

using NativeFunction = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

  Value() = default;                         // undefined
  static Value Undefined(std::string hint);  // hint: the message an access error reports
  static Value None();
  Value(bool b);
  Value(int64_t i);
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(double d);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value Dict(std::shared_ptr<ValueDict> dict, bool is_namespace = false);
  static Value Function(std::string name, NativeFunction fn);
  static Value FromJson(const Json& j);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const;
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kDict && is_namespace_; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return is_bool() ? (b_ ? 1 : 0) : i_; }
  double as_double() const { return is_float() ? d_ : static_cast<double>(as_int()); }
  const std::string& as_string() const { return s_; }
  const std::vector<Value>& items() const;
  const ValueDict& dict() const { return *dict_; }
  ValueDict& mutable_dict() const { return *dict_; }
  const Callable& callable() const { return *fn_; }
  const std::string& undefined_hint() const { return s_; }

  // Python truthiness; undefined is false.
  bool Truthy() const;
  // Python type name for error messages ("int", "str", "dict", ...).
  std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool is_namespace_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;  // string value, or the undefined hint
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<Callable> fn_;
};

// Arguments of a call: positional then keyword, as written.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct ValueList {
  std::vector<Value> items;
  bool is_tuple = false;
};

// Insertion-ordered string-keyed mapping (Python dicts keep insertion order).
class ValueDict {
 public:
  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value v);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
  std::unordered_map<std::string, size_t> index_;
};

struct Callable {
  std::string name;
  NativeFunction fn;
};

inline const std::vector<Value>& Value::items() const {
  return list_->items;
}
inline bool Value::is_tuple() const {
  return kind_ == Kind::kList && list_->is_tuple;
}

// str(v) as Jinja prints it ("" for undefined, "None", "True", "[1, 'a']").
std::string ToStr(const Value& v);
// repr(v).
std::string Repr(const Value& v);
// Python ==.
bool Equals(const Value& a, const Value& b);
// Python <: -1, 0, 1; throws TemplateError for unorderable types.
int Compare(const Value& a, const Value& b);
// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys) as transformers'
// tojson filter; indent < 0 means None. Separators default as in Python.
std::string ToJsonText(const Value& v, int indent, bool sort_keys, const std::string& item_sep,
                       const std::string& key_sep);
// Elements of an iterable (list, tuple, string characters, dict keys); undefined is empty.
std::vector<Value> Iterate(const Value& v);

// A template failed at render or parse time; converted to plm::Error by the Template facade.
struct TemplateError {
  std::string message;
  int line = 0;
  bool raised = false;  // raise_exception() from the template itself
  bool limit = false;   // a size bound of the interpreter was exceeded
};

// Bounds that keep hostile templates from exhausting memory.
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;
inline constexpr size_t kMaxSequenceItems = 1'000'000;

}  // namespace plm::jinja
