// Every string of FIXTURES/tokenizer/encode_decode.json, through every tokenizer found in the
// fixture folders: ids, ids with special tokens, token strings and the four decodes must equal
// the Hugging Face reference. One line per string is printed; failures name the field.
#include <gtest/gtest.h>

#include <iostream>

#include "text/tokenizer.h"
#include "text_test_util.h"

namespace plm {
namespace {

std::vector<int32_t> Ids(const nlohmann::ordered_json& j) {
  return j.get<std::vector<int32_t>>();
}

std::string IdsText(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

TEST(TokenizerFixtures, EveryStringEveryTokenizer) {
  const auto dirs = test::TokenizerDirs();
  ASSERT_FALSE(dirs.empty()) << "no tokenizer.json under FIXTURES/models or FIXTURES/processors";
  const auto cases = test::ReadOrderedFixture("encode_decode.json");
  ASSERT_TRUE(cases.is_array());
  ASSERT_FALSE(cases.empty());
  size_t failed = 0;
  size_t total = 0;
  for (const std::string& dir : dirs) {
    const Tokenizer& tok = test::CachedTokenizer(dir);
    for (const auto& c : cases) {
      ++total;
      const std::string text = c["text"].get<std::string>();
      std::vector<std::string> problems;
      const auto ids = tok.Encode(text, false);
      if (ids != Ids(c["ids"]))
        problems.push_back("ids " + IdsText(ids) + " != " + IdsText(Ids(c["ids"])));
      const auto ids_special = tok.Encode(text, true);
      if (ids_special != Ids(c["ids_with_special"]))
        problems.push_back("ids_with_special " + IdsText(ids_special));
      if (tok.Tokenize(text) != c["tokens"].get<std::vector<std::string>>())
        problems.push_back("tokens");
      const auto ref_ids = Ids(c["ids"]);
      const auto ref_special = Ids(c["ids_with_special"]);
      auto check = [&](const char* field, const std::string& got) {
        if (got != c[field].get<std::string>())
          problems.push_back(std::string(field) + " " + test::Quote(got) +
                             " != " + test::Quote(c[field].get<std::string>()));
      };
      check("decode", tok.Decode(ref_ids));
      check("decode_no_cleanup", tok.Decode(ref_ids, false, false));
      check("decode_with_special", tok.Decode(ref_special, false));
      check("decode_skip_special", tok.Decode(ref_special, true));
      std::cout << (problems.empty() ? "[ ok ] " : "[FAIL] ") << dir.substr(dir.rfind('/') + 1)
                << " " << test::Quote(text).substr(0, 70) << "\n";
      for (const auto& p : problems) std::cout << "         " << p << "\n";
      if (!problems.empty()) ++failed;
    }
  }
  std::cout << total - failed << " passed, " << failed << " failed (strings x tokenizers)\n";
  EXPECT_EQ(failed, 0u);
}

}  // namespace
}  // namespace plm
