// Prefill in slices (LoadOptions::prefill_chunk) gives the logits and the KV cache of one pass:
// every fixture model, the reduced-precision paths, a prompt that does not divide evenly into
// slices, and decode steps continuing from either cache. Left-padded prompts are not sliced
// (their padded rows attend uniformly to every key of the pass, as the reference does): the
// result equals one pass exactly.
#include <gtest/gtest.h>

#include <random>

#include "plm/model.h"
#include "support/test_support.h"

namespace plm {
namespace {

TEST(ChunkedPrefill, SameLogitsAndCacheAsOnePass) {
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  for (const auto& dir : dirs) {
    for (ComputeType compute : {ComputeType::kBF16, ComputeType::kQ8}) {
      LoadOptions one, sliced;
      one.compute = sliced.compute = compute;
      one.prefill_chunk = 0;
      sliced.prefill_chunk = 17;  // 45 = 17 + 17 + 11: the flash kernel and the few-row kernel
      auto a = PerceptionLMForConditionalGeneration::FromPretrained(dir, one);
      auto b = PerceptionLMForConditionalGeneration::FromPretrained(dir, sliced);
      const int64_t V = a->config().text.vocab_size, L = 45;
      std::mt19937 rng(3);
      std::uniform_int_distribution<int64_t> tok(0, std::min<int64_t>(V, 120000) - 1);
      ForwardInputs in;
      for (int64_t i = 0; i < L; ++i) in.input_ids.push_back(tok(rng));
      in.len = L;
      {
        ForwardInputs padded = in;
        padded.attention_mask.assign(L, 1);
        padded.attention_mask[0] = padded.attention_mask[1] = 0;
        KVCache pa = a->NewCache(1, L), pb = b->NewCache(1, L);
        const ForwardOutputs qa = a->Forward(padded, &pa), qb = b->Forward(padded, &pb);
        EXPECT_EQ(qa.logits.data, qb.logits.data) << dir << " left-padded prompt";
      }
      KVCache ca = a->NewCache(1, L + 3), cb = b->NewCache(1, L + 3);
      const ForwardOutputs oa = a->Forward(in, &ca), ob = b->Forward(in, &cb);
      ASSERT_EQ(oa.logits.numel(), ob.logits.numel());
      ASSERT_EQ(cb.length(), L);
      const std::string what = dir + " " + ComputeTypeName(compute);
      EXPECT_LT(test::Compare(ob.logits.ptr(), oa.logits.ptr(), oa.logits.numel()).rel(), 2e-3)
          << what;
      for (int step = 0; step < 3; ++step) {
        ForwardInputs next;
        next.input_ids = {tok(rng)};
        next.len = 1;
        const ForwardOutputs da = a->Forward(next, &ca), db = b->Forward(next, &cb);
        EXPECT_LT(test::Compare(db.logits.ptr(), da.logits.ptr(), da.logits.numel()).rel(), 2e-3)
            << what << " decode step " << step;
      }
    }
  }
}

}  // namespace
}  // namespace plm
