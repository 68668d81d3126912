// Every conversation of FIXTURES/tokenizer/chat_template.json, rendered with the template of
// every model folder found in the fixtures (with and without the generation prompt), must give
// the reference text, and encoding that text must give the reference ids (one BOS).
#include <gtest/gtest.h>

#include <iostream>

#include "text/chat_template.h"
#include "text/prompt_encoding.h"
#include "text/tokenizer.h"
#include "text_test_util.h"

namespace plm {
namespace {

TEST(ChatTemplateFixtures, EveryConversationEveryModel) {
  const auto dirs = test::TokenizerDirs();
  ASSERT_FALSE(dirs.empty());
  const auto cases = test::ReadOrderedFixture("chat_template.json");
  ASSERT_TRUE(cases.is_array());
  ASSERT_FALSE(cases.empty());
  size_t failed = 0, total = 0;
  for (const std::string& dir : dirs) {
    const Tokenizer& tok = test::CachedTokenizer(dir);
    const ChatTemplate tmpl = ChatTemplate::FromDirectory(dir);
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      ++total;
      std::vector<std::string> problems;
      const bool gen = c["add_generation_prompt"].get<bool>();
      const std::string rendered = tmpl.Render(c["messages"], gen);
      if (rendered != c["rendered"].get<std::string>())
        problems.push_back("rendered " + test::Quote(rendered) +
                           "\n          != " + test::Quote(c["rendered"].get<std::string>()));
      const auto ids = EncodeChatPrompt(tok, c["rendered"].get<std::string>());
      if (ids != c["ids"].get<std::vector<int32_t>>()) problems.push_back("ids differ");
      const auto ids_from_ours = EncodeChatPrompt(tok, rendered);
      if (ids_from_ours != c["ids"].get<std::vector<int32_t>>())
        problems.push_back("ids of our rendering differ");
      std::cout << (problems.empty() ? "[ ok ] " : "[FAIL] ") << dir.substr(dir.rfind('/') + 1)
                << " conversation " << i << " (add_generation_prompt=" << gen << ")\n";
      for (const auto& p : problems) std::cout << "         " << p << "\n";
      if (!problems.empty()) ++failed;
    }
  }
  std::cout << total - failed << " passed, " << failed << " failed (conversations x models)\n";
  EXPECT_EQ(failed, 0u);
}

}  // namespace
}  // namespace plm
