// Generate at the API level: extra stop ids and stop strings (HF generate's eos_token_id list and
// stop_strings), batches of prompts of different lengths (left padding) equal to one-by-one
// runs, and one loaded model shared by several threads generating at once.
#include <gtest/gtest.h>

#include <thread>

#include "plm/error.h"
#include "plm/generation.h"
#include "plm/pipeline.h"
#include "plm/processor.h"
#include "support/test_support.h"

namespace plm {
namespace {

constexpr double kNearTie = 1e-3;  // steps whose top-1/top-2 margin is smaller may differ

struct Loaded {
  std::unique_ptr<PerceptionLMForConditionalGeneration> model;
  std::unique_ptr<PerceptionLMProcessor> proc;
  GenerationConfig gc;
};

Loaded Load(const std::string& dir) {
  return {PerceptionLMForConditionalGeneration::FromPretrained(dir),
          PerceptionLMProcessor::FromPretrained(dir), GenerationConfig::FromDirectory(dir)};
}

Conversation Ask(const std::string& text, const std::string& image = "") {
  Message m{"user", {}};
  if (!image.empty()) m.content.push_back(ContentPart::Image(image));
  m.content.push_back(ContentPart::Text(text));
  return {m};
}

// Greedy tokens of `a` and `b` agree up to the first step where `a`'s top-1/top-2 margin is a
// near tie (where float noise may flip the choice); returns the compared length.
size_t ExpectSameUpToNearTie(const std::vector<int64_t>& a, const std::vector<StepLogprobs>& lp,
                             const std::vector<int64_t>& b, const std::string& what) {
  size_t i = 0;
  for (; i < a.size() && i < b.size(); ++i) {
    if (a[i] == b[i]) continue;
    const auto& top = lp.at(i).top;
    EXPECT_LT(top.at(0).logprob - top.at(1).logprob, kNearTie)
        << what << ": differs at step " << i << " (" << a[i] << " vs " << b[i] << ")";
    return i;
  }
  EXPECT_EQ(a.size(), b.size()) << what;
  return i;
}

TEST(Generate, ExtraStopTokenIds) {
  for (const auto& dir : test::FixtureModels()) {
    Loaded l = Load(dir);
    const ProcessorOutputs in = l.proc->Process({Ask("Count to ten.")});
    l.gc.max_new_tokens = 12;
    l.gc.eos_token_ids.clear();  // run the whole length
    const GenerateOutput ref = Generate(*l.model, in.AsForwardInputs(), l.gc);
    const auto& seq = ref.sequences[0];
    ASSERT_EQ(seq.size(), 12u);
    EXPECT_EQ(ref.stop_reasons[0], StopReason::kLength);
    // The first token at k >= 2 not seen before: stopping on it ends the row right there.
    size_t k = 2;
    while (k < seq.size() && std::find(seq.begin(), seq.begin() + k, seq[k]) != seq.begin() + k)
      ++k;
    if (k == seq.size()) continue;
    GenerateOptions o;
    o.stop_token_ids = {seq[k]};
    std::vector<int64_t> seen;
    o.on_token = [&](int64_t, int64_t t) {
      seen.push_back(t);
      return true;
    };
    const GenerateOutput out = Generate(*l.model, in.AsForwardInputs(), l.gc, o);
    EXPECT_EQ(out.sequences[0], std::vector<int64_t>(seq.begin(), seq.begin() + k + 1)) << dir;
    EXPECT_EQ(out.stop_reasons[0], StopReason::kEos);
    EXPECT_EQ(seen, std::vector<int64_t>(seq.begin(), seq.begin() + k));  // not the stop token
    EXPECT_STREQ(StopReasonName(out.stop_reasons[0]), "stop");
  }
}

TEST(Generate, StopStrings) {
  int checked = 0;
  for (const auto& dir : test::FixtureModels()) {
    Loaded l = Load(dir);
    const ProcessorOutputs in = l.proc->Process({Ask("Write a sentence.")});
    l.gc.max_new_tokens = 16;
    l.gc.eos_token_ids.clear();
    const GenerateOutput ref = Generate(*l.model, in.AsForwardInputs(), l.gc);
    const auto& seq = ref.sequences[0];
    // A stop string completed by token k: the new text of token k, absent from the text before.
    for (size_t k = 1; k < seq.size(); ++k) {
      const std::string before = l.proc->Decode(std::span(seq.data(), k));
      const std::string upto = l.proc->Decode(std::span(seq.data(), k + 1));
      if (upto.size() <= before.size() || upto.compare(0, before.size(), before) != 0) continue;
      const std::string stop = upto.substr(before.size());
      if (before.find(stop) != std::string::npos) continue;
      GenerateOptions o;
      o.stop_strings = {"never-in-this-text-\x01", stop};
      o.processor = l.proc.get();
      const GenerateOutput out = Generate(*l.model, in.AsForwardInputs(), l.gc, o);
      EXPECT_EQ(out.sequences[0], std::vector<int64_t>(seq.begin(), seq.begin() + k + 1))
          << dir << " stop string \"" << stop << "\"";
      EXPECT_EQ(out.stop_reasons[0], StopReason::kStopString);
      EXPECT_STREQ(StopReasonName(out.stop_reasons[0]), "stop");
      ++checked;
      break;
    }
    GenerateOptions bad;
    bad.stop_strings = {"x"};
    EXPECT_THROW(Generate(*l.model, in.AsForwardInputs(), l.gc, bad), Error);
  }
  EXPECT_GT(checked, 0) << "no model produced text to stop on";
}

// A batch of prompts of different lengths (left padded, as HF) gives each row what the prompt
// gives alone.
TEST(Generate, BatchOfDifferentLengthsEqualsOneByOne) {
  const std::string image = test::AnyFixtureImage();
  ASSERT_FALSE(image.empty());
  for (const auto& dir : test::FixtureModels()) {
    Loaded l = Load(dir);
    l.gc.max_new_tokens = 8;
    const std::vector<Conversation> convs = {
        Ask("Hi."), Ask("Describe this picture in one long and detailed sentence.", image),
        Ask("What colour is the sky on a clear day?")};
    const ProcessorOutputs batch = l.proc->Process(convs);  // left padding by default
    ASSERT_EQ(batch.batch, 3);
    GenerateOptions o;
    o.top_logprobs = 2;
    const GenerateOutput together = Generate(*l.model, batch.AsForwardInputs(), l.gc, o);
    for (size_t i = 0; i < convs.size(); ++i) {
      const ProcessorOutputs one = l.proc->Process({convs[i]});
      if (i == 1) {
        EXPECT_EQ(one.len, batch.len) << "the longest prompt needs no padding";
      } else {
        EXPECT_LT(one.len, batch.len);
      }
      const GenerateOutput alone = Generate(*l.model, one.AsForwardInputs(), l.gc, o);
      std::vector<int64_t> row = together.sequences[i];
      row.resize(together.logprobs[i].size());  // drop the padding after a finished row
      ExpectSameUpToNearTie(alone.sequences[0], alone.logprobs[0], row,
                            dir + " row " + std::to_string(i));
    }
  }
}

// One loaded model, several threads generating at once: each result equals the sequential one.
TEST(Generate, ConcurrentSessionsShareOneModel) {
  const std::string image = test::AnyFixtureImage();
  for (const auto& dir : test::FixtureModels()) {
    Loaded l = Load(dir);
    l.gc.max_new_tokens = 6;
    std::vector<ProcessorOutputs> inputs;
    for (const auto& c : {Ask("One."), Ask("Two, with a picture.", image), Ask("Three!"),
                          Ask("Four: a longer question about nothing in particular?")})
      inputs.push_back(l.proc->Process({c}));
    GenerateOptions o;
    o.output_scores = true;
    std::vector<GenerateOutput> sequential;
    for (const auto& in : inputs)
      sequential.push_back(Generate(*l.model, in.AsForwardInputs(), l.gc, o));
    for (int round = 0; round < 2; ++round) {
      std::vector<GenerateOutput> parallel(inputs.size());
      std::vector<std::thread> threads;
      std::vector<std::string> errors(inputs.size());
      for (size_t i = 0; i < inputs.size(); ++i)
        threads.emplace_back([&, i] {
          try {
            parallel[i] = Generate(*l.model, inputs[i].AsForwardInputs(), l.gc, o);
          } catch (const std::exception& e) {
            errors[i] = e.what();
          }
        });
      for (auto& t : threads) t.join();
      for (size_t i = 0; i < inputs.size(); ++i) {
        ASSERT_EQ(errors[i], "");
        EXPECT_EQ(parallel[i].sequences, sequential[i].sequences) << dir << " request " << i;
        ASSERT_EQ(parallel[i].scores.size(), sequential[i].scores.size());
        for (size_t t = 0; t < parallel[i].scores.size(); ++t)
          EXPECT_EQ(parallel[i].scores[t].data, sequential[i].scores[t].data)
              << dir << " request " << i << " step " << t;
      }
    }
  }
}

// The same through Pipeline::Chat (processor + model + text), as the CLI and server use it.
TEST(Generate, ConcurrentPipelineChats) {
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  auto pipe = Pipeline::FromPretrained(dirs[0]);
  const std::string image = test::AnyFixtureImage();
  std::vector<ChatRequest> reqs;
  for (const auto& c : {Ask("Alpha."), Ask("Beta, look:", image), Ask("Gamma?")}) {
    ChatRequest r;
    r.conversation = c;
    r.generation = pipe->default_generation();
    r.generation.max_new_tokens = 6;
    reqs.push_back(r);
  }
  std::vector<ChatResult> seq;
  for (const auto& r : reqs) seq.push_back(pipe->Chat(r));
  std::vector<ChatResult> par(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i)
    threads.emplace_back([&, i] { par[i] = pipe->Chat(reqs[i]); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(par[i].tokens, seq[i].tokens) << i;
    EXPECT_EQ(par[i].text, seq[i].text) << i;
  }
}

}  // namespace
}  // namespace plm
