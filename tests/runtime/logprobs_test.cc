// ComputeLogprobs (log-softmax of a logits row, the chosen token, the top alternatives) and
// Generate's per-token logprobs, checked against hand-computed values and the golden scores.
#include <gtest/gtest.h>

#include <cmath>

#include "io/safetensors.h"
#include "plm/error.h"
#include "plm/generation.h"
#include "support/golden_inputs.h"
#include "support/test_support.h"

namespace plm {
namespace {

TEST(Logprobs, SmallRowByHand) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  double se = 0;
  for (float x : logits) se += std::exp(static_cast<double>(x));
  const double lse = std::log(se);
  const StepLogprobs r = ComputeLogprobs(logits, 2, 3);
  EXPECT_EQ(r.token, 2);
  EXPECT_NEAR(r.logprob, 2.0 - lse, 1e-6);
  ASSERT_EQ(r.top.size(), 3u);
  // Ties (ids 1 and 3) keep the lower id first.
  EXPECT_EQ(r.top[0].token, 1);
  EXPECT_EQ(r.top[1].token, 3);
  EXPECT_EQ(r.top[2].token, 2);
  EXPECT_NEAR(r.top[0].logprob, 3.0 - lse, 1e-6);
  EXPECT_EQ(r.top[0].logprob, r.top[1].logprob);
  // Probabilities sum to one.
  const StepLogprobs all = ComputeLogprobs(logits, 0, 100);
  ASSERT_EQ(all.top.size(), logits.size());
  double p = 0;
  for (const auto& t : all.top) p += std::exp(static_cast<double>(t.logprob));
  EXPECT_NEAR(p, 1.0, 1e-6);
  EXPECT_TRUE(ComputeLogprobs(logits, 4, 0).top.empty());
  EXPECT_TRUE(ComputeLogprobs(logits, 4, -1).top.empty());
}

TEST(Logprobs, LargeLogitsAndMaskedEntries) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {1000.0f, -inf, 999.0f, NAN};
  const StepLogprobs r = ComputeLogprobs(logits, 0, 4);
  EXPECT_NEAR(r.logprob, -std::log1p(std::exp(-1.0)), 1e-6);
  EXPECT_EQ(r.top[0].token, 0);
  EXPECT_EQ(r.top[1].token, 2);
  EXPECT_EQ(r.top[2].token, 1);  // -inf ranks above NaN
  EXPECT_TRUE(std::isinf(r.top[2].logprob));
  EXPECT_EQ(r.top[3].token, 3);
}

TEST(Logprobs, TokenOutsideTheRowIsAnError) {
  const std::vector<float> logits = {0.0f, 1.0f};
  EXPECT_THROW(ComputeLogprobs(logits, 2, 1), Error);
  EXPECT_THROW(ComputeLogprobs(logits, -1, 1), Error);
}

TEST(Logprobs, OffByDefault) {
  const std::string root = test::FixturesDir();
  for (const auto& m : test::ListDir(root + "/models", true)) {
    const std::string dir = root + "/models/" + m;
    if (!test::PathExists(dir + "/config.json")) continue;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir);
    ForwardInputs in;
    in.input_ids = {128000, 9906};
    in.len = 2;
    GenerationConfig gc;
    gc.max_new_tokens = 2;
    EXPECT_TRUE(Generate(*model, in, gc).logprobs.empty());
    return;
  }
  FAIL() << "no fixture model";
}

// Generate's first-step logprobs are the golden last-position logits minus their log-sum-exp.
TEST(Logprobs, GenerateMatchesGoldenScores) {
  const std::string root = test::FixturesDir();
  int checked = 0;
  for (const auto& m : test::ListDir(root + "/models", true)) {
    const std::string dir = root + "/models/" + m;
    if (!test::PathExists(dir + "/config.json")) continue;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir);
    for (const auto& f : test::ListDir(root + "/goldens/" + m, false)) {
      if (f.size() < 12 || f.substr(f.size() - 12) != ".safetensors") continue;
      SafetensorsFile g(root + "/goldens/" + m + "/" + f);
      std::vector<float> pix, vid;
      const ForwardInputs in = test::GoldenInputs(g, &pix, &vid);
      GenerationConfig gc = GenerationConfig::FromDirectory(dir);
      gc.max_new_tokens = 3;
      GenerateOptions opts;
      opts.top_logprobs = 5;
      const GenerateOutput out = Generate(*model, in, gc, opts);
      ASSERT_EQ(out.logprobs.size(), static_cast<size_t>(in.batch));
      const auto ids = g.Get("generated.top5_ids").ToI64();
      const auto vals = g.Get("generated.top5_values").ToF32();
      const auto lse = g.Get("logits.last_logsumexp").ToF32();
      const int64_t steps = g.Get("generated_ids").shape[1];
      for (int64_t b = 0; b < in.batch; ++b) {
        ASSERT_EQ(out.logprobs[b].size(), out.sequences[b].size());
        const StepLogprobs& s = out.logprobs[b][0];
        EXPECT_EQ(s.token, out.sequences[b][0]);
        ASSERT_EQ(s.top.size(), 5u);
        EXPECT_EQ(s.top[0].token, s.token);  // greedy picks the most likely token
        EXPECT_EQ(s.top[0].logprob, s.logprob);
        for (int j = 0; j < 5; ++j) {
          const size_t at = static_cast<size_t>(b * steps * 5 + j);
          EXPECT_NEAR(s.top[j].logprob, vals[at] - lse[b], 1e-3) << f << " row " << b << " #" << j;
          if (j < 4 && vals[at] - vals[at + 1] > 1e-3) {
            EXPECT_EQ(s.top[j].token, ids[at]);
          }
        }
        for (size_t t = 1; t < out.logprobs[b].size(); ++t) {
          EXPECT_EQ(out.logprobs[b][t].token, out.sequences[b][t]);
          EXPECT_LE(out.logprobs[b][t].logprob, 0.0f);
        }
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no golden cases";
}

}  // namespace
}  // namespace plm
