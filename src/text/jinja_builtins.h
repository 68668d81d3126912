// Built-in filters, tests, globals and the attribute / item / method access rules of Jinja's
// sandboxed environment as transformers configures it (tojson without HTML escaping and with
// insertion order, raise_exception, strftime_now).
#pragma once

#include <string>

#include "text/jinja_value.h"

namespace plm::jinja {

bool HasFilter(const std::string& name);
bool HasTest(const std::string& name);
Value ApplyFilter(const std::string& name, const Value& input, CallArgs& args);
bool ApplyTest(const std::string& name, const Value& input, CallArgs& args);

// environment.getattr: attributes (str/dict methods, namespace members) first, then items.
Value GetAttr(const Value& obj, const std::string& name);
// environment.getitem: items first (indexes, keys), then attributes for string keys.
Value GetItem(const Value& obj, const Value& key);
// obj[start:stop:step] for lists, tuples and strings (any bound may be none/undefined).
Value GetSlice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// range, dict, namespace, raise_exception, strftime_now.
Value LookupGlobal(const std::string& name);

// Reads call arguments by position or keyword, Python style.
class ArgReader {
 public:
  ArgReader(CallArgs& args, std::string function) : args_(args), fn_(std::move(function)) {}
  // Argument `name` at `position`; `def` when absent.
  Value Get(size_t position, const char* name, Value def = Value()) const;
  // Throws when more positional arguments than `count`, or unknown keywords, were passed.
  void CheckNoMore(size_t count, std::initializer_list<const char*> names) const;

 private:
  CallArgs& args_;
  std::string fn_;
};

// Truthiness check that raises for undefined values carrying an access error
// (`foo.bar` where foo is undefined).
[[noreturn]] void ThrowUndefined(const Value& v);

}  // namespace plm::jinja
