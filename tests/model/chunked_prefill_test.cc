// Prefill in slices (LoadOptions::prefill_chunk) gives the logits and the KV cache of one pass:
// every fixture model, the reduced-precision paths, a prompt that does not divide evenly into
// slices, and decode steps continuing from either cache. Left-padded prompts are not sliced
// (their padded rows attend uniformly to every key of the pass, as the reference does): the
// result equals one pass exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "plm/error.h"
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

// A sliced prefill keeps only the hidden rows whose logits are asked for; each kept row's logits
// match the same row of an all-rows pass (up to the LM head's GEMM shape), whichever slices the
// rows fall in, and for prompts given as token ids or as embeddings (read in place).
TEST(ChunkedPrefill, KeptRowsMatchAllRows) {
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  for (const auto& dir : dirs) {
    LoadOptions sliced;
    sliced.compute = ComputeType::kQ8;
    sliced.prefill_chunk = 16;
    auto m = PerceptionLMForConditionalGeneration::FromPretrained(dir, sliced);
    const int64_t V = m->config().text.vocab_size, D = m->config().text.hidden_size, L = 40;
    std::mt19937 rng(5);
    std::uniform_int_distribution<int64_t> tok(0, std::min<int64_t>(V, 120000) - 1);
    ForwardInputs in;
    for (int64_t i = 0; i < L; ++i) in.input_ids.push_back(tok(rng));
    in.len = L;
    const ForwardOutputs all = m->Forward(in);
    ASSERT_EQ(all.logits.numel(), L * V);
    auto expect_rows = [&](const ForwardOutputs& o, const std::vector<int64_t>& rows,
                           const std::string& what) {
      ASSERT_EQ(o.logits.numel(), static_cast<int64_t>(rows.size()) * V) << what;
      for (size_t i = 0; i < rows.size(); ++i)
        // The same hidden row; only the LM head's GEMM shape differs (kept rows vs all rows).
        EXPECT_LT(test::Compare(o.logits.ptr() + i * V, all.logits.ptr() + rows[i] * V, V).rel(),
                  1e-5)
            << dir << " " << what << " row " << rows[i];
    };
    ForwardInputs last = in;
    last.logits_to_keep = 1;
    expect_rows(m->Forward(last), {L - 1}, "logits_to_keep = 1");
    ForwardInputs tail = in;
    tail.logits_to_keep = 20;  // rows 20..39: part of the second slice and the third
    std::vector<int64_t> tail_rows;
    for (int64_t r = 20; r < L; ++r) tail_rows.push_back(r);
    expect_rows(m->Forward(tail), tail_rows, "logits_to_keep = 20");
    ForwardInputs picked = in;
    picked.logits_positions = {33, 3, 17};
    expect_rows(m->Forward(picked), {33, 3, 17}, "logits_positions");
    ForwardInputs embeds;
    embeds.len = L;
    embeds.inputs_embeds = m->GetInputEmbeddings(in, nullptr).data;
    ASSERT_EQ(static_cast<int64_t>(embeds.inputs_embeds.size()), L * D);
    embeds.logits_to_keep = 2;
    expect_rows(m->Forward(embeds), {L - 2, L - 1}, "inputs_embeds");
    embeds.inputs_embeds.pop_back();
    EXPECT_THROW(m->Forward(embeds), Error) << "inputs_embeds of the wrong size";
  }
}

}  // namespace
}  // namespace plm
