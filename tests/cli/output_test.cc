// What `plm run` prints besides the answer: the --json object (text, token counts, stop reason,
// per-stage timings), progress and timings on stderr only when it is a terminal (or with
// --verbose), nothing with --quiet.
#include <gtest/gtest.h>

#include "cli/cli_util.h"
#include "core/json.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<std::string> RunArgs(const std::string& model, const std::string& image) {
  return {"run", "-m", model, "-i", image, "-p", "What is this?", "-n", "3", "-t", "2"};
}

TEST(CliOutput, JsonHasCountsStopReasonAndStageTimings) {
  const auto models = test::FixtureModels();
  ASSERT_FALSE(models.empty());
  auto args = RunArgs(models[0], test::AnyFixtureImage());
  args.push_back("--json");
  const test::RunResult r = test::RunPlm(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const Json j = ParseJson(r.out, "plm run --json");
  for (const char* k : {"text", "prompt_tokens", "completion_tokens", "image_tiles", "video_frames",
                        "stop_reason", "tokens", "timings"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GT(j["prompt_tokens"].get<int64_t>(), 0);
  EXPECT_GT(j["image_tiles"].get<int64_t>(), 0);
  const auto tokens = j["tokens"].get<std::vector<int64_t>>();
  const int64_t completion = j["completion_tokens"].get<int64_t>();
  const std::string stop = j["stop_reason"].get<std::string>();
  EXPECT_TRUE(stop == "stop" || stop == "length") << stop;
  // The stop token is counted but not part of `tokens`.
  EXPECT_EQ(completion, static_cast<int64_t>(tokens.size()) + (stop == "stop" ? 1 : 0));
  const Json& t = j["timings"];
  for (const char* k : {"preprocess_s", "vision_s", "prefill_s", "decode_s", "prefill_tok_per_s",
                        "decode_tok_per_s"}) {
    ASSERT_TRUE(t.contains(k)) << k;
    EXPECT_GE(t[k].get<double>(), 0.0) << k;
  }
  EXPECT_GT(t["vision_s"].get<double>(), 0.0);
  EXPECT_GT(t["prefill_s"].get<double>(), 0.0);
}

TEST(CliOutput, ProgressOnlyOnTerminalsOrWhenAsked) {
  const auto models = test::FixtureModels();
  ASSERT_FALSE(models.empty());
  const auto args = RunArgs(models[0], test::AnyFixtureImage());
  // Not a terminal: the answer on stdout, nothing on stderr.
  const test::RunResult plain = test::RunPlm(args);
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_TRUE(plain.err.empty()) << plain.err;
  // A terminal: model loading, vision progress and the timing summary appear (out and err are
  // merged by the pseudo-terminal).
  test::RunOptions tty;
  tty.tty = true;
  const test::RunResult term = test::RunPlm(args, tty);
  ASSERT_EQ(term.code, 0) << term.out << term.err;
  EXPECT_NE(term.out.find("loading"), std::string::npos) << term.out;
  EXPECT_NE(term.out.find("encoding images"), std::string::npos) << term.out;
  EXPECT_NE(term.out.find("preparing the vision tower"), std::string::npos) << term.out;
  EXPECT_NE(term.out.find("prefill"), std::string::npos) << term.out;
  EXPECT_NE(term.out.find("[preprocess"), std::string::npos) << term.out;
  // --quiet on a terminal: only the answer.
  auto quiet = args;
  quiet.push_back("--quiet");
  const test::RunResult q = test::RunPlm(quiet, tty);
  ASSERT_EQ(q.code, 0);
  EXPECT_EQ(q.out.find("[preprocess"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("encoding images"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("preparing the vision tower"), std::string::npos) << q.out;
  // --verbose without a terminal: plain progress lines and the summary on stderr.
  auto verbose = args;
  verbose.push_back("--verbose");
  const test::RunResult v = test::RunPlm(verbose);
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.err.find("[preprocess"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("prefill"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("preparing the vision tower"), std::string::npos) << v.err;
  EXPECT_EQ(v.err.find('\r'), std::string::npos) << "no terminal control characters in logs";
  EXPECT_EQ(v.out, plain.out);
}

}  // namespace
}  // namespace plm
