// ForwardSequences (continuous batching): several independent sequences, each with its own
// KV cache at its own length, decoded in one call give the same logits as decoding each alone.
#include <gtest/gtest.h>

#include <random>

#include "plm/error.h"
#include "plm/model.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<int64_t> RandomIds(std::mt19937& rng, int64_t n, int64_t vocab) {
  // Text tokens only: the low ids of the vocabulary hold no media placeholders.
  std::uniform_int_distribution<int64_t> d(0, std::min<int64_t>(vocab, 120000) - 1);
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (auto& i : ids) i = d(rng);
  return ids;
}

void CheckSequencesMatchSingles(ComputeType compute, float tol) {
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  for (const auto& dir : dirs) {
    LoadOptions lo;
    lo.compute = compute;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, lo);
    const int64_t V = model->config().text.vocab_size;
    std::mt19937 rng(7);
    // Prompts of different lengths: each sequence sits at its own cache length. A long one
    // (from 8192 keys) has its decode attention split over the keys on a bf16 cache, next to
    // rows that are not split.
    std::vector<int64_t> lengths = {5, 12, 1, 20};
    // (The f32 path keeps a float32 cache, never split: no long row there, whose f32 prefill
    // would take seconds. Forward does not cap positions at max_position_embeddings.)
    if (compute != ComputeType::kF32) lengths.push_back(8200);
    std::vector<KVCache> caches;
    for (int64_t n : lengths) {
      KVCache c = model->NewCache(1, n + 4);
      ForwardInputs in;
      in.input_ids = RandomIds(rng, n, V);
      in.len = n;
      in.logits_to_keep = 1;
      model->Forward(in, &c);
      caches.push_back(std::move(c));
    }
    std::vector<KVCache> singles = caches;  // decoded one by one as the reference
    const auto B = static_cast<int64_t>(lengths.size());
    for (int step = 0; step < 3; ++step) {
      ForwardInputs batch;
      batch.input_ids = RandomIds(rng, B, V);
      batch.batch = B;
      batch.len = 1;
      std::vector<KVCache*> ptrs;
      for (auto& c : caches) ptrs.push_back(&c);
      const ForwardOutputs got = model->ForwardSequences(batch, ptrs);
      ASSERT_EQ(got.logits.shape, (std::vector<int64_t>{B, 1, V}));
      for (int64_t b = 0; b < B; ++b) {
        ForwardInputs one;
        one.input_ids = {batch.input_ids[b]};
        one.len = 1;
        const ForwardOutputs want = model->Forward(one, &singles[b]);
        const auto s =
            test::Compare(got.logits.ptr() + b * V, want.logits.ptr(), static_cast<size_t>(V));
        EXPECT_LE(s.rel(), tol) << dir << " " << ComputeTypeName(compute) << " step " << step
                                << " row " << b;
        EXPECT_EQ(caches[b].length(), singles[b].length());
      }
    }
  }
}

TEST(ForwardSequences, F32MatchesOneByOne) {
  CheckSequencesMatchSingles(ComputeType::kF32, 1e-5f);
}

TEST(ForwardSequences, Bf16MatchesOneByOne) {
  // Different row counts take different GEMM kernels; bf16 rounding of activations differs.
  CheckSequencesMatchSingles(ComputeType::kBF16, 1e-3f);
}

TEST(ForwardSequences, BadInputsAreErrors) {
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  auto model = PerceptionLMForConditionalGeneration::FromPretrained(dirs[0]);
  KVCache a = model->NewCache(1, 4), b = model->NewCache(1, 4), two = model->NewCache(2, 4);
  ForwardInputs in;
  in.input_ids = {1, 2};
  in.batch = 2;
  in.len = 1;
  std::vector<KVCache*> one = {&a};
  EXPECT_THROW(model->ForwardSequences(in, one), Error);
  std::vector<KVCache*> same = {&a, &a};
  EXPECT_THROW(model->ForwardSequences(in, same), Error);
  std::vector<KVCache*> wide = {&a, &two};
  EXPECT_THROW(model->ForwardSequences(in, wide), Error);
  std::vector<KVCache*> ok = {&a, &b};
  ForwardInputs masked = in;
  masked.attention_mask = {1, 1};
  EXPECT_THROW(model->ForwardSequences(masked, ok), Error);
  std::vector<float> pixels(3);
  ForwardInputs media = in;
  media.pixel_values = {pixels.data(), 1};
  EXPECT_THROW(model->ForwardSequences(media, ok), Error);
  // Nothing was appended by the failed calls.
  EXPECT_EQ(a.length(), 0);
  EXPECT_EQ(b.length(), 0);
  model->ForwardSequences(in, ok);
  EXPECT_EQ(a.length(), 1);
  EXPECT_EQ(b.length(), 1);
}

}  // namespace
}  // namespace plm
