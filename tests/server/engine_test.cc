// plm::Engine against Pipeline::Chat: same tokens for greedy and seeded requests, alone, batched
// with others, with chunked prefill and vision slices, and with a reused prefix.
#include <gtest/gtest.h>

#include <thread>

#include "plm/error.h"
#include "plm/scheduler.h"
#include "server/server_test_util.h"
#include "support/test_support.h"

namespace plm {
namespace {

using std::chrono::milliseconds;

struct Outcome {
  std::string text;
  std::vector<int64_t> tokens;
  EngineEvent final_event;
};

std::shared_ptr<EngineStream> SubmitChat(Engine& engine, const ChatRequest& req,
                                         int top_logprobs = -1) {
  auto ticket = engine.TryAcquire();
  if (!ticket) throw std::runtime_error("engine full");
  EngineRequest er;
  er.inputs = engine.pipeline().Prepare(req);
  er.generation = req.generation;
  er.stop_strings = req.stop_strings;
  er.top_logprobs = top_logprobs;
  return engine.Submit(std::move(*ticket), std::move(er));
}

Outcome Collect(EngineStream& s) {
  Outcome o;
  EngineEvent ev;
  for (;;) {
    if (!s.Next(&ev, milliseconds(30000))) throw std::runtime_error("engine stalled");
    o.text += ev.text;
    o.tokens.insert(o.tokens.end(), ev.tokens.begin(), ev.tokens.end());
    if (ev.finished) break;
  }
  o.final_event = ev;
  return o;
}

void ExpectSame(const ChatResult& want, const Outcome& got, const std::string& what) {
  EXPECT_EQ(got.tokens, want.tokens) << what;
  EXPECT_EQ(got.text, want.text) << what;
  EXPECT_EQ(got.final_event.completion_tokens, want.completion_tokens) << what;
  EXPECT_EQ(got.final_event.prompt_tokens, want.prompt_tokens) << what;
  EXPECT_EQ(FinishReasonName(got.final_event.finish_reason),
            std::string(StopReasonName(want.stop_reason)))
      << what;
}

// Requests of several shapes for one model: the golden image prompt, text prompts of different
// lengths, a seeded sampled one and one with a stop string.
std::vector<ChatRequest> Mix(const std::string& model, const Pipeline& pipe) {
  const auto g = test::ImageGolden(model);
  std::vector<ChatRequest> out;
  out.push_back(test::MakeChat(pipe, g.system, g.user, {g.image_path}, g.max_tokens));
  out.push_back(test::MakeChat(pipe, "", "Hello there", {}, 9));
  out.push_back(test::MakeChat(pipe, "Be brief.", "Tell me a long story about a robot.", {}, 23));
  ChatRequest s = test::MakeChat(pipe, "", "Describe the picture.", {g.image_path}, 17);
  s.generation.do_sample = true;
  s.generation.temperature = 0.8f;
  s.generation.top_p = 0.9f;
  s.generation.seed = 4242;
  out.push_back(s);
  ChatRequest t = test::MakeChat(pipe, "", "Count to ten", {}, 12);
  out.push_back(t);
  return out;
}

TEST(Engine, GreedyEqualsPipelineOnEveryFixtureModel) {
  const auto models = test::ServerModels();
  ASSERT_FALSE(models.empty());
  for (const auto& m : models) {
    auto pipe = test::LoadModel(m);
    const auto g = test::ImageGolden(m);
    ASSERT_FALSE(g.image_path.empty()) << m;
    const ChatRequest req = test::MakeChat(*pipe, g.system, g.user, {g.image_path}, g.max_tokens);
    const ChatResult want = pipe->Chat(req);
    Engine engine(*pipe, {});
    auto s = SubmitChat(engine, req);
    ExpectSame(want, Collect(*s), m);
  }
}

TEST(Engine, ConcurrentRequestsEqualSequentialOnes) {
  for (const auto& m : test::ServerModels()) {
    auto pipe = test::LoadModel(m);
    const auto reqs = Mix(m, *pipe);
    std::vector<ChatResult> want;
    for (const auto& r : reqs) want.push_back(pipe->Chat(r));
    EngineOptions o;
    o.max_batch = 3;  // some wait in the queue, the rest decode together
    o.max_queue = 8;
    o.prefix_cache_bytes = 0;
    Engine engine(*pipe, o);
    std::vector<std::shared_ptr<EngineStream>> streams;
    for (const auto& r : reqs) streams.push_back(SubmitChat(engine, r));
    for (size_t i = 0; i < reqs.size(); ++i)
      ExpectSame(want[i], Collect(*streams[i]), m + " request " + std::to_string(i));
    EXPECT_GT(engine.stats().decode_rows, engine.stats().decode_steps) << "decode steps batched";
  }
}

TEST(Engine, ChunkedPrefillAndVisionSlicesGiveTheSameTokens) {
  for (const auto& m : test::ServerModels()) {
    auto pipe = test::LoadModel(m);
    const auto g = test::ImageGolden(m);
    const ChatRequest req = test::MakeChat(*pipe, g.system, g.user, {g.image_path}, g.max_tokens);
    const ChatResult want = pipe->Chat(req);
    EngineOptions o;
    o.prefill_chunk = 7;
    o.vision_tiles_per_slice = 1;
    Engine engine(*pipe, o);
    auto a = SubmitChat(engine, req);
    auto b = SubmitChat(engine, test::MakeChat(*pipe, "", "interleaved", {}, 30));
    ExpectSame(want, Collect(*a), m);
    Collect(*b);
  }
}

TEST(Engine, ShortRequestsDoNotWaitBehindABigImage) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  const auto g = test::ImageGolden(m);
  EngineOptions o;
  o.prefill_chunk = 4;  // many slices for the image request
  o.vision_tiles_per_slice = 1;
  o.prefix_cache_bytes = 0;
  Engine engine(*pipe, o);
  const ChatRequest big = test::MakeChat(*pipe, g.system, g.user, {g.image_path}, 4);
  const ChatRequest small = test::MakeChat(*pipe, "", "Hi", {}, 4);
  const ChatResult want = pipe->Chat(big);
  // Prepared first, submitted back to back.
  auto prepare = [&](const ChatRequest& r) {
    EngineRequest er;
    er.inputs = pipe->Prepare(r);
    er.generation = r.generation;
    return er;
  };
  EngineRequest ea = prepare(big), eb = prepare(small);
  auto ta = engine.TryAcquire(), tb = engine.TryAcquire();
  ASSERT_TRUE(ta && tb);
  auto a = engine.Submit(std::move(*ta), std::move(ea));
  auto b = engine.Submit(std::move(*tb), std::move(eb));
  const Outcome oa = Collect(*a), ob = Collect(*b);
  // The short prompt is prepared first, and both answers are still right.
  EXPECT_LT(ob.final_event.timings.first_token_s, oa.final_event.timings.first_token_s);
  ExpectSame(want, oa, m);
  EXPECT_EQ(ob.tokens, pipe->Chat(small).tokens);
}

TEST(Engine, ReusedPrefixGivesTheSameTokensAsAFreshRun) {
  for (const auto& m : test::ServerModels()) {
    auto pipe = test::LoadModel(m);
    const auto g = test::ImageGolden(m);
    EngineOptions o;
    o.min_prefix_reuse = 4;
    Engine engine(*pipe, o);
    const ChatRequest first = test::MakeChat(*pipe, g.system, g.user, {g.image_path}, 8);
    const Outcome a = Collect(*SubmitChat(engine, first));
    EXPECT_EQ(a.final_event.cached_tokens, 0);
    // The same request again: everything but the last prompt position comes from the cache.
    const Outcome again = Collect(*SubmitChat(engine, first));
    EXPECT_EQ(again.final_event.cached_tokens, again.final_event.prompt_tokens - 1) << m;
    EXPECT_EQ(again.tokens, a.tokens) << m;
    // The next turn of the conversation reuses the image and the first answer.
    ChatRequest next = first;
    next.conversation.push_back({"assistant", {ContentPart::Text(a.text)}});
    next.conversation.push_back({"user", {ContentPart::Text("And what else?")}});
    next.generation.max_new_tokens = 10;
    const ChatResult want = pipe->Chat(next);
    const Outcome b = Collect(*SubmitChat(engine, next));
    EXPECT_GT(b.final_event.cached_tokens, a.final_event.prompt_tokens / 2) << m;
    ExpectSame(want, b, m + " second turn");
    // A different image at the same place must not reuse the first image's keys.
    std::string other;
    for (const auto& f : test::ListDir(test::FixturesDir() + "/inputs", false))
      if (f.size() > 4 && f.substr(f.size() - 4) == ".png" &&
          test::FixturesDir() + "/inputs/" + f != g.image_path) {
        other = test::FixturesDir() + "/inputs/" + f;
        break;
      }
    ASSERT_FALSE(other.empty());
    const ChatRequest swapped = test::MakeChat(*pipe, g.system, g.user, {other}, 8);
    const ChatResult want_swapped = pipe->Chat(swapped);
    const Outcome c = Collect(*SubmitChat(engine, swapped));
    ExpectSame(want_swapped, c, m + " other image");
    const ProcessorOutputs in = pipe->Prepare(swapped);
    int64_t first_image = 0;
    while (in.input_ids[first_image] != pipe->processor().image_token_id()) ++first_image;
    EXPECT_LE(c.final_event.cached_tokens, first_image) << m;
    EXPECT_GT(engine.stats().prefix_hits, 0);
  }
}

TEST(Engine, StopStringsAndLogprobs) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  ChatRequest req = test::MakeChat(*pipe, "", "Tell me a long story about a robot.", {}, 20);
  const ChatResult full = pipe->Chat(req);
  ASSERT_GT(full.text.size(), 6u);
  // A stop string from the middle of the answer: text ends before it, as Pipeline::Chat does.
  req.stop_strings = {full.text.substr(full.text.size() / 2, 3)};
  const ChatResult want = pipe->Chat(req);
  Engine engine(*pipe, {});
  const Outcome got = Collect(*SubmitChat(engine, req));
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.final_event.finish_reason, FinishReason::kStop);
  EXPECT_EQ(got.text.find(req.stop_strings[0]), std::string::npos);

  auto s = SubmitChat(engine, test::MakeChat(*pipe, "", "Hello", {}, 5), 3);
  EngineEvent all, ev;
  do {
    ASSERT_TRUE(s->Next(&ev, milliseconds(30000)));
    all.logprobs.insert(all.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
    all.tokens.insert(all.tokens.end(), ev.tokens.begin(), ev.tokens.end());
  } while (!ev.finished);
  ASSERT_EQ(all.logprobs.size(), all.tokens.size());
  for (size_t i = 0; i < all.tokens.size(); ++i) {
    const auto& lp = all.logprobs[i];
    EXPECT_EQ(lp.token, all.tokens[i]);
    ASSERT_EQ(lp.top.size(), 3u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(lp.top[0].token, lp.token);
    EXPECT_FLOAT_EQ(lp.top[0].logprob, lp.logprob);
    EXPECT_LE(lp.logprob, 0.0f);
    EXPECT_GE(lp.top[0].logprob, lp.top[1].logprob);
  }
}

TEST(Engine, CancelTimeoutAndCapacity) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  EngineOptions o;
  o.max_batch = 1;
  o.max_queue = 1;
  Engine engine(*pipe, o);
  // Two places in all: a third ticket is refused until one is given back.
  auto t1 = engine.TryAcquire();
  auto t2 = engine.TryAcquire();
  ASSERT_TRUE(t1 && t2);
  EXPECT_FALSE(engine.TryAcquire());
  t2.reset();
  auto t3 = engine.TryAcquire();
  ASSERT_TRUE(t3);
  t3.reset();
  t1.reset();

  // Long enough to still be running when cancelled: no EOS, a budget of most of the context.
  const int64_t budget = pipe->model().config().text.max_position_embeddings - 64;
  ChatRequest req = test::MakeChat(*pipe, "", "Tell me a long story.", {}, budget);
  req.generation.eos_token_ids.clear();
  auto s = SubmitChat(engine, req);
  EngineEvent ev;
  ASSERT_TRUE(s->Next(&ev, milliseconds(30000)));
  s->Cancel();
  const Outcome rest = Collect(*s);
  EXPECT_EQ(rest.final_event.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(rest.final_event.completion_tokens, budget);

  auto ticket = engine.TryAcquire();
  ASSERT_TRUE(ticket);
  EngineRequest er;
  er.inputs = pipe->Prepare(req);
  er.generation = req.generation;
  er.deadline = std::chrono::steady_clock::now();
  auto late = engine.Submit(std::move(*ticket), std::move(er));
  EXPECT_EQ(Collect(*late).final_event.finish_reason, FinishReason::kTimeout);

  // Inputs the engine cannot run are refused at Submit with a clear error.
  ticket = engine.TryAcquire();
  ASSERT_TRUE(ticket);
  EngineRequest bad;
  bad.inputs = pipe->Prepare(req);
  bad.generation = req.generation;
  bad.generation.max_new_tokens = pipe->model().config().text.max_position_embeddings;
  EXPECT_THROW(engine.Submit(std::move(*ticket), std::move(bad)), Error);
  EXPECT_EQ(engine.stats().reserved, 0);

  // Shutdown cancels what does not finish within the grace period.
  auto longer = SubmitChat(engine, req);
  ASSERT_TRUE(longer->Next(&ev, milliseconds(30000)));
  engine.Shutdown(milliseconds(50));
  EXPECT_EQ(Collect(*longer).final_event.finish_reason, FinishReason::kShutdown);
  EXPECT_FALSE(engine.TryAcquire());
}

}  // namespace
}  // namespace plm
