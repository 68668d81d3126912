// `plm chat` driven through a pipe: /image, /video, /clear, /exit and text turns. Each answer
// equals what Pipeline::Chat gives for the same conversation; errors inside the session (a
// missing or corrupt attachment, an unknown command) keep it alive.
#include <gtest/gtest.h>

#include "cli/cli_util.h"
#include "plm/pipeline.h"
#include "support/test_support.h"

namespace plm {
namespace {

constexpr int64_t kMaxTokens = 5;
constexpr int kThreads = 2;

std::string FirstInput(const std::string& suffix) {
  const std::string dir = test::FixturesDir() + "/inputs";
  for (const auto& f : test::ListDir(dir, false))
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      return dir + "/" + f;
  return "";
}

// What the chat prints for one turn: the streamed answer and a newline.
std::string Turn(const Pipeline& pipe, Conversation* history, Message user) {
  history->push_back(std::move(user));
  ChatRequest req;
  req.conversation = *history;
  req.generation = pipe.default_generation();
  req.generation.max_new_tokens = kMaxTokens;
  const ChatResult r = pipe.Chat(req);
  history->push_back({"assistant", {ContentPart::Text(r.text)}});
  return r.text + "\n";
}

TEST(Chat, MultiTurnEqualsPipeline) {
  const std::string image = FirstInput(".png"), video = FirstInput(".npy");
  ASSERT_FALSE(image.empty());
  const std::string tmp = test::MakeTempDir();
  test::WriteFile(tmp + "/corrupt.png", std::string("\x89PNG\r\n\x1a\n", 8) + "not really");
  for (const auto& model : test::FixtureModels()) {
    LoadOptions lo;
    lo.threads = kThreads;
    // What `plm chat` runs without --dtype: the checkpoint config's dtype.
    lo.compute = StoredComputeType(PerceptionLMConfig::FromFile(model + "/config.json"));
    auto pipe = Pipeline::FromPretrained(model, lo);
    // The same session, computed in-process.
    std::string want;
    Conversation h;
    want += Turn(*pipe, &h,
                 {"user", {ContentPart::Image(image), ContentPart::Text("What is in the image?")}});
    want += Turn(*pipe, &h, {"user", {ContentPart::Text("Tell me more.")}});
    h.clear();  // /clear
    Message third{"user", {}};
    if (!video.empty()) third.content.push_back(ContentPart::Video(video));
    third.content.push_back(ContentPart::Text("And this?"));
    want += Turn(*pipe, &h, third);
    want += Turn(*pipe, &h, {"user", {ContentPart::Text("Thanks.")}});

    std::string script;
    script += "/image /no/such/file.png\n";  // error: the session goes on
    script += "/image " + image + "\n";
    script += "What is in the image?\n";
    script += "/frobnicate\n";  // unknown command: a message, nothing else
    script += "\n";             // empty lines are skipped
    script += "Tell me more.\n";
    script += "/image " + tmp + "/corrupt.png\n";
    script += "This turn fails to decode its image.\n";  // error: the turn is dropped
    script += "/clear\n";
    if (!video.empty()) script += "/video " + video + "\n";
    script += "And this?\n";
    script += "Thanks.\n";
    script += "/exit\n";
    script += "Never answered.\n";
    test::RunOptions o;
    o.stdin_text = script;
    const test::RunResult r = test::RunPlm(
        {"chat", "-m", model, "-n", std::to_string(kMaxTokens), "-t", std::to_string(kThreads)}, o);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, want) << model;
    // Only the errors reach stderr when it is not a terminal, one line each.
    EXPECT_NE(r.err.find("/no/such/file.png"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("corrupt.png"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("/frobnicate"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 3) << r.err;
    EXPECT_EQ(r.err.find("attached"), std::string::npos) << r.err;
  }
}

TEST(Chat, EndOfInputEndsTheSession) {
  const auto models = test::FixtureModels();
  ASSERT_FALSE(models.empty());
  test::RunOptions o;
  o.stdin_text = "Hello.";  // no newline, then end of input
  const test::RunResult r = test::RunPlm({"chat", "-m", models[0], "-n", "2", "-t", "2"}, o);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_TRUE(r.err.empty()) << r.err;
  // A system prompt is accepted; a bad flag is a usage error.
  EXPECT_EQ(test::RunPlm({"chat", "-m", models[0], "--system", "Be brief.", "-n", "1"}, o).code, 0);
  EXPECT_EQ(test::RunPlm({"chat", "-m", models[0], "--bogus"}, o).code, 2);
}

}  // namespace
}  // namespace plm
