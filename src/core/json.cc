#include "core/json.h"

#include <cmath>
#include <cstdint>

#include "core/mapped_file.h"
#include "plm/error.h"

namespace plm {

Json ParseJson(const std::string& text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse errors, and numbers out of range (406)
    throw Error(ErrorCode::kCorrupt, what + ": invalid JSON: " + e.what());
  }
}

Json ReadJsonFile(const std::string& path) {
  return ParseJson(ReadFileToString(path), path);
}

namespace {

const Json* Find(const Json& j, const std::string& key, const std::string& what) {
  if (!j.is_object()) throw Error(ErrorCode::kCorrupt, what + ": expected a JSON object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void WrongType(const std::string& key, const char* expected, const std::string& what) {
  throw Error(ErrorCode::kCorrupt, what + ": key \"" + key + "\" must be " + expected);
}

}  // namespace

int64_t JsonIntOr(const Json& j, const std::string& key, int64_t def, const std::string& what) {
  const Json* v = Find(j, key, what);
  if (v == nullptr) return def;
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return v->get<int64_t>();
  } else if (v->is_number_integer()) {
    return v->get<int64_t>();
  } else if (v->is_number_float()) {
    // 2.0 is accepted as 2 (Python writes some ints as floats); only in-range whole numbers.
    const double d = v->get<double>();
    if (std::isfinite(d) && std::fabs(d) < 9.0e18 && d == std::floor(d))
      return static_cast<int64_t>(d);
  }
  WrongType(key, "an integer", what);
}

int64_t JsonInt(const Json& j, const std::string& key, const std::string& what) {
  if (Find(j, key, what) == nullptr)
    throw Error(ErrorCode::kCorrupt, what + ": missing key \"" + key + "\"");
  return JsonIntOr(j, key, 0, what);
}

double JsonNumberOr(const Json& j, const std::string& key, double def, const std::string& what) {
  const Json* v = Find(j, key, what);
  if (v == nullptr) return def;
  if (!v->is_number()) WrongType(key, "a number", what);
  return v->get<double>();
}

double JsonNumber(const Json& j, const std::string& key, const std::string& what) {
  if (Find(j, key, what) == nullptr)
    throw Error(ErrorCode::kCorrupt, what + ": missing key \"" + key + "\"");
  return JsonNumberOr(j, key, 0, what);
}

bool JsonBoolOr(const Json& j, const std::string& key, bool def, const std::string& what) {
  const Json* v = Find(j, key, what);
  if (v == nullptr) return def;
  if (!v->is_boolean()) WrongType(key, "true or false", what);
  return v->get<bool>();
}

std::string JsonStringOr(const Json& j, const std::string& key, const std::string& def,
                         const std::string& what) {
  const Json* v = Find(j, key, what);
  if (v == nullptr) return def;
  if (!v->is_string()) WrongType(key, "a string", what);
  return v->get<std::string>();
}

std::string JsonString(const Json& j, const std::string& key, const std::string& what) {
  if (Find(j, key, what) == nullptr)
    throw Error(ErrorCode::kCorrupt, what + ": missing key \"" + key + "\"");
  return JsonStringOr(j, key, "", what);
}

}  // namespace plm
