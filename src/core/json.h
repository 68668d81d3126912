// JSON parsing with errors that name the file and the key (nlohmann-json underneath).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace plm {

using Json = nlohmann::json;

// Parses `text`; `what` (usually a path) is named in the error (plm::Error kCorrupt).
Json ParseJson(const std::string& text, const std::string& what);
// Reads and parses a JSON file.
Json ReadJsonFile(const std::string& path);

// Typed access with errors naming `what` and the key. Missing keys take `def` in the *Or forms.
int64_t JsonInt(const Json& j, const std::string& key, const std::string& what);
int64_t JsonIntOr(const Json& j, const std::string& key, int64_t def, const std::string& what);
double JsonNumber(const Json& j, const std::string& key, const std::string& what);
double JsonNumberOr(const Json& j, const std::string& key, double def, const std::string& what);
bool JsonBoolOr(const Json& j, const std::string& key, bool def, const std::string& what);
std::string JsonString(const Json& j, const std::string& key, const std::string& what);
std::string JsonStringOr(const Json& j, const std::string& key, const std::string& def,
                         const std::string& what);

}  // namespace plm
