// The Jinja interpreter against Python's jinja2: tests/text/data/jinja_cases.json holds
// templates with the output (or the failure) jinja2 gives under transformers' chat-template
// environment (regenerate with tools/gen_jinja_cases.py). One line per case is printed.
#include <gtest/gtest.h>

#include <iostream>

#include "core/mapped_file.h"
#include "plm/error.h"
#include "text/jinja_template.h"
#include "text_test_util.h"

namespace plm {
namespace {

using jinja::Template;
using jinja::Value;
using jinja::ValueDict;

nlohmann::ordered_json Cases() {
  return nlohmann::ordered_json::parse(
      ReadFileToString(std::string(PLM_SOURCE_DIR) + "/tests/text/data/jinja_cases.json"));
}

std::string RenderCase(const std::string& source, const nlohmann::ordered_json& context) {
  ValueDict ctx;
  for (auto it = context.begin(); it != context.end(); ++it)
    ctx.Set(it.key(), Value::FromJson(it.value()));
  return Template::Parse(source, "case").Render(ctx);
}

TEST(Jinja, MatchesJinja2OnEveryCase) {
  const auto data = Cases();
  const auto& cases = data["cases"];
  ASSERT_GT(cases.size(), 50u);
  size_t failed = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"].get<std::string>();
    const std::string source = c["template"].get<std::string>();
    std::string problem;
    if (c.contains("output")) {
      try {
        const std::string got = RenderCase(source, c["context"]);
        if (got != c["output"].get<std::string>())
          problem =
              "got " + test::Quote(got) + ", want " + test::Quote(c["output"].get<std::string>());
      } catch (const Error& e) {
        problem = std::string("unexpected error: ") + e.what();
      }
    } else {
      const std::string want = c["error"].get<std::string>();
      const std::string type = c["error_type"].get<std::string>();
      try {
        const std::string got = RenderCase(source, c["context"]);
        problem = "rendered " + test::Quote(got) + " but jinja2 raised " + type + ": " + want;
      } catch (const Error& e) {
        const std::string msg = e.what();
        // Syntax errors are worded differently; every other failure carries jinja2's message.
        if (type != "TemplateSyntaxError" && msg.find(want) == std::string::npos)
          problem = "error \"" + msg + "\" lacks jinja2's \"" + want + "\"";
        if (type == "TemplateSyntaxError" && e.code() != ErrorCode::kCorrupt &&
            e.code() != ErrorCode::kUnsupported)
          problem = "syntax error reported with the wrong code: " + msg;
        if (type == "TemplateAssertionError" && e.code() != ErrorCode::kUnsupported)
          problem = "unknown filter/test should be kUnsupported: " + msg;
        if (type != "TemplateSyntaxError" && type != "TemplateAssertionError" &&
            e.code() != ErrorCode::kInvalidArgument)
          problem = "runtime error should be kInvalidArgument: " + msg;
      }
    }
    std::cout << (problem.empty() ? "[ ok ] " : "[FAIL] ") << name << "\n";
    if (!problem.empty()) {
      std::cout << "         " << problem << "\n";
      ++failed;
    }
  }
  std::cout << cases.size() - failed << " passed, " << failed << " failed (jinja cases)\n";
  EXPECT_EQ(failed, 0u);
}

TEST(Jinja, RaiseExceptionMessageIsKept) {
  try {
    Template::Parse("{{ raise_exception('Only user and assistant roles are supported!') }}", "t")
        .Render({});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "chat template raised: Only user and assistant roles are supported!");
  }
}

TEST(Jinja, ErrorsNameTheTemplateAndLine) {
  try {
    Template::Parse("line one\n{{ 'a' + 1 }}", "my_template.jinja").Render({});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_template.jinja:2"), std::string::npos) << e.what();
  }
  try {
    Template::Parse("a\nb\n{% for x in y %}", "other.jinja");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("other.jinja:"), std::string::npos) << e.what();
  }
}

TEST(Jinja, RunawayTemplatesHitLimits) {
  try {
    Template::Parse(
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}"
        "{% endfor %}",
        "t")
        .Render({});
    FAIL() << "expected a limit error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLimit) << e.what();
  }
  try {
    Template::Parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "t").Render({});
    FAIL() << "expected a limit error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLimit) << e.what();
  }
}

TEST(Jinja, ValuesFromJsonKeepOrderAndTypes) {
  const auto j = nlohmann::ordered_json::parse(R"({"z": 1, "a": [1.5, null, true, "s"]})");
  EXPECT_EQ(jinja::ToStr(Value::FromJson(j)), "{'z': 1, 'a': [1.5, None, True, 's']}");
}

}  // namespace
}  // namespace plm
