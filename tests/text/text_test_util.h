// Fixture discovery shared by the text-layer tests.
#pragma once

#include <string>
#include <vector>

#include "core/json.h"
#include "text/tokenizer.h"

namespace plm::test {

// Every folder under FIXTURES/models/* and FIXTURES/processors/* that has a tokenizer.json.
std::vector<std::string> TokenizerDirs();
// FIXTURES/tokenizer/NAME parsed, keeping object key order as in the file.
nlohmann::ordered_json ReadOrderedFixture(const std::string& name);
// The tokenizer of a fixture folder, loaded once per test program (loading parses 7 MB).
const Tokenizer& CachedTokenizer(const std::string& dir);
// Printable form of a string for failure reports (JSON-escaped).
std::string Quote(const std::string& s);

}  // namespace plm::test
