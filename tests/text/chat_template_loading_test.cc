// Where a chat template is found, in which order, and how bad templates fail.
#include <gtest/gtest.h>

#include "plm/error.h"
#include "support/test_support.h"
#include "text/chat_template.h"
#include "text_test_util.h"

namespace plm {
namespace {

const char* kMessages = R"([{"role": "user", "content": "hi"}])";

std::string RenderDir(const std::string& dir, const std::string& name = "") {
  return ChatTemplate::FromDirectory(dir, name).Render(nlohmann::ordered_json::parse(kMessages),
                                                       false);
}

TEST(ChatTemplateLoading, SearchOrder) {
  const std::string dir = test::MakeTempDir();
  EXPECT_THROW(RenderDir(dir), Error);
  test::WriteFile(dir + "/tokenizer_config.json",
                  R"({"bos_token": "<B>", "chat_template": [
                       {"name": "default", "template": "tok-default {{ bos_token }}"},
                       {"name": "tool_use", "template": "tok-tools"}]})");
  EXPECT_EQ(RenderDir(dir), "tok-default <B>");
  EXPECT_EQ(RenderDir(dir, "tool_use"), "tok-tools");
  test::WriteFile(dir + "/chat_template.jinja", "jinja {{ messages[0].content }}\n");
  EXPECT_EQ(RenderDir(dir), "jinja hi");
  test::WriteFile(dir + "/chat_template.json", R"({"chat_template": "legacy-json"})");
  EXPECT_EQ(RenderDir(dir), "legacy-json");
  test::WriteFile(dir + "/processor_config.json", R"({"chat_template": "processor"})");
  EXPECT_EQ(RenderDir(dir), "processor");
}

TEST(ChatTemplateLoading, TokenizerConfigStringTemplate) {
  const std::string dir = test::MakeTempDir();
  test::WriteFile(dir + "/tokenizer_config.json",
                  R"({"eos_token": {"content": "<E>"}, "chat_template": "{{ eos_token }}!"})");
  EXPECT_EQ(RenderDir(dir), "<E>!");
}

TEST(ChatTemplateLoading, FixtureModelsHaveTemplates) {
  for (const std::string& dir : test::TokenizerDirs()) {
    const ChatTemplate t = ChatTemplate::FromDirectory(dir);
    EXPECT_FALSE(t.source().empty()) << dir;
  }
}

TEST(ChatTemplateLoading, ContentAsStringOrParts) {
  const ChatTemplate t = ChatTemplate::FromString(
      "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
      "{% for p in m.content %}[{{ p.type }}]{% endfor %}{% endif %}{% endfor %}");
  EXPECT_EQ(t.Render(nlohmann::ordered_json::parse(
                         R"([{"role": "user", "content": "s"},
                             {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]},
                             {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}])"),
                     false),
            "s[image][text][image]");
}

TEST(ChatTemplateLoading, ExtraContextAndSpecialTokens) {
  const ChatTemplate t = ChatTemplate::FromString(
      "{{ bos_token }}|{{ date }}|{{ add_generation_prompt }}|{{ tools }}", {{"bos_token", "<s>"}});
  EXPECT_EQ(t.Render(Json::array(), true, Json{{"date", "today"}}), "<s>|today|True|None");
  EXPECT_EQ(t.Render(Json::array(), false, Json{{"bos_token", "X"}}), "X||False|None");
}

TEST(ChatTemplateLoading, BadTemplatesFailClearly) {
  try {
    ChatTemplate::FromString("{{ x | frobnicate }}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("frobnicate"), std::string::npos);
  }
  EXPECT_THROW(ChatTemplate::FromString("{% if %}"), Error);
  EXPECT_THROW(ChatTemplate::FromString("bad \xff utf8"), Error);
  const ChatTemplate raising = ChatTemplate::FromString(
      "{% if messages[0].role != 'system' %}{{ raise_exception('System first!') }}{% endif %}");
  try {
    raising.Render(nlohmann::ordered_json::parse(kMessages), false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("System first!"), std::string::npos);
  }
  EXPECT_THROW(raising.Render(Json::object(), false), Error);  // messages must be a list
  const std::string dir = test::MakeTempDir();
  test::WriteFile(dir + "/tokenizer_config.json", R"({"chat_template": 5})");
  EXPECT_THROW(ChatTemplate::FromDirectory(dir), Error);
}

}  // namespace
}  // namespace plm
