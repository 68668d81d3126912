// The reduced-precision compute paths keep the KV cache in bf16 (the f32 path keeps float32, the
// oracle). Decoding through a bf16 cache stays close to decoding the same model through a float32
// cache; a prefix copied with KVCache::CopyPrefixFrom continues exactly like the original cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/key_tiles.h"
#include "plm/error.h"
#include "plm/kv_cache.h"
#include "plm/model.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::string FirstModel() {
  const std::string root = test::FixturesDir() + "/models";
  for (const auto& m : test::ListDir(root, true))
    if (test::PathExists(root + "/" + m + "/config.json")) return root + "/" + m;
  return "";
}

ForwardInputs Tokens(const std::vector<int64_t>& ids) {
  ForwardInputs in;
  in.input_ids = ids;
  in.len = static_cast<int64_t>(ids.size());
  in.logits_to_keep = 1;
  return in;
}

std::vector<int64_t> Ids(int64_t n, int64_t seed, int64_t vocab) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((seed + 37 * i) % std::min<int64_t>(vocab, 1000));
  return ids;
}

double MaxRel(const Tensor& got, const Tensor& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(got.data[i] - want.data[i])));
    den = std::max(den, static_cast<double>(std::fabs(want.data[i])));
  }
  return num / std::max(den, 1e-30);
}

// Max rel logit difference of one more token through the decode kernels on `cache` against the
// reference attention loop (output_attentions) on a copy of it.
double KernelsVsReferenceLoop(const PerceptionLMForConditionalGeneration& model, KVCache* cache,
                              int64_t seed) {
  ForwardInputs in = Tokens(Ids(1, seed, model.config().text.vocab_size));
  KVCache copy = model.NewCache(1, 1);
  copy.CopyPrefixFrom(*cache, cache->length());
  in.output_attentions = true;
  const ForwardOutputs with = model.Forward(in, &copy);
  EXPECT_EQ(with.attentions.size(), static_cast<size_t>(model.config().text.num_hidden_layers));
  in.output_attentions = false;
  return MaxRel(with.logits, model.Forward(in, cache).logits);
}

TEST(KVCacheBf16, DecodeThroughBf16CacheMatchesFloat32Cache) {
  const std::string dir = FirstModel();
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(PerceptionLMForConditionalGeneration::FromPretrained(dir)->NewCache(1, 4).type(),
            KVType::kF32);
  for (ComputeType ct : {ComputeType::kBF16, ComputeType::kQ8}) {
    LoadOptions opt;
    opt.compute = ct;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, opt);
    const TextConfig& t = model->config().text;
    KVCache c16 = model->NewCache(1, 8);  // grows along the way
    ASSERT_EQ(c16.type(), KVType::kBF16);
    KVCache c32(t.num_hidden_layers, 1, t.num_key_value_heads, t.head_dim, 8, KVType::kF32);
    const auto prompt = Ids(40, 11, t.vocab_size);
    double worst = MaxRel(model->Forward(Tokens(prompt), &c16).logits,
                          model->Forward(Tokens(prompt), &c32).logits);
    // Single-token steps (the grouped decode kernel) and a short 3-token chunk (causal, few rows).
    for (int step = 0; step < 10; ++step) {
      const auto ids = Ids(step == 5 ? 3 : 1, 200 + step, t.vocab_size);
      const Tensor a = model->Forward(Tokens(ids), &c16).logits;
      const Tensor b = model->Forward(Tokens(ids), &c32).logits;
      worst = std::max(worst, MaxRel(a, b));
      EXPECT_EQ(std::max_element(a.data.begin(), a.data.end()) - a.data.begin(),
                std::max_element(b.data.begin(), b.data.end()) - b.data.begin())
          << ComputeTypeName(ct) << " step " << step;
    }
    std::printf("[kv-bf16] %s: max rel logit difference bf16 vs f32 cache %.3g\n",
                ComputeTypeName(ct), worst);
    // q8 re-quantizes every activation row to int8, so the bf16 rounding of keys/values flips
    // some int8 roundings downstream: a looser bound than bf16's.
    EXPECT_LT(worst, ct == ComputeType::kBF16 ? 0.02 : 0.06) << ComputeTypeName(ct);
    EXPECT_EQ(c16.length(), c32.length());
    EXPECT_LT(c16.BytesUsed() * 2, c32.BytesUsed() + c32.BytesUsed() / 2);
    // Attention probabilities (the reference attention loop) from a bf16 cache.
    EXPECT_LT(KernelsVsReferenceLoop(*model, &c16, 999), 1e-4);
  }
}

// From 8192 cached positions the decoder splits each head's one-token attention over the keys
// (core/attention.h DecodePart, where FillsLse: head sizes that are multiples of 16, AVX-512) and
// merges the parts: still close to the float32 cache, and within 1e-4 of the reference attention
// loop (output_attentions) on the same cache, which reads it unsplit. Every fixture model runs it
// (Forward does not cap positions at max_position_embeddings; both caches see the same ones);
// where the split does not apply, the same checks hold for the whole-call kernel.
TEST(KVCacheBf16, LongContextDecodeMatchesFloat32Cache) {
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  for (const std::string& dir : dirs) {
    LoadOptions opt;
    opt.compute = ComputeType::kBF16;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, opt);
    const TextConfig& t = model->config().text;
    constexpr int64_t kPrompt = 8200;
    KVCache c16 = model->NewCache(1, kPrompt + 8);
    KVCache c32(t.num_hidden_layers, 1, t.num_key_value_heads, t.head_dim, kPrompt + 8,
                KVType::kF32);
    const auto prompt = Ids(kPrompt, 5, t.vocab_size);
    double worst = MaxRel(model->Forward(Tokens(prompt), &c16).logits,
                          model->Forward(Tokens(prompt), &c32).logits);
    for (int step = 0; step < 4; ++step) {
      const auto ids = Ids(1, 300 + step, t.vocab_size);
      const Tensor a = model->Forward(Tokens(ids), &c16).logits;
      const Tensor b = model->Forward(Tokens(ids), &c32).logits;
      worst = std::max(worst, MaxRel(a, b));
      EXPECT_EQ(std::max_element(a.data.begin(), a.data.end()) - a.data.begin(),
                std::max_element(b.data.begin(), b.data.end()) - b.data.begin())
          << dir << " step " << step;
    }
    std::printf("[kv-bf16] %s, %lld positions: max rel logit difference %.3g\n", dir.c_str(),
                static_cast<long long>(kPrompt), worst);
    EXPECT_LT(worst, 0.02) << dir;
    EXPECT_LT(KernelsVsReferenceLoop(*model, &c16, 777), 1e-4) << dir;
  }
}

TEST(KVCacheBf16, CopiedPrefixContinuesExactly) {
  const std::string dir = FirstModel();
  ASSERT_FALSE(dir.empty());
  for (ComputeType ct : {ComputeType::kF32, ComputeType::kBF16}) {
    LoadOptions opt;
    opt.compute = ct;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, opt);
    const TextConfig& t = model->config().text;
    const auto prompt = Ids(30, 5, t.vocab_size), cont = Ids(4, 77, t.vocab_size);
    KVCache a = model->NewCache(1, 30);
    model->Forward(Tokens(prompt), &a);
    KVCache c = model->NewCache(1, 2);
    c.CopyPrefixFrom(a, 20);
    EXPECT_EQ(c.length(), 20);
    for (int64_t l = 0; l < t.num_hidden_layers; ++l)
      for (int64_t h = 0; h < t.num_key_value_heads; ++h) {
        const int64_t n = 20 * t.head_dim;
        if (ct == ComputeType::kF32) {
          EXPECT_TRUE(std::equal(c.k(l, 0, h), c.k(l, 0, h) + n, a.k(l, 0, h)));
          EXPECT_TRUE(std::equal(c.v(l, 0, h), c.v(l, 0, h) + n, a.v(l, 0, h)));
        } else {
          for (int64_t j = 0; j < 20; ++j)  // keys in tiles of positions
            for (int64_t d = 0; d < t.head_dim; ++d) {
              const int64_t at = KeyTileIndex(j, d, t.head_dim);
              ASSERT_EQ(c.k_bf16(l, 0, h)[at], a.k_bf16(l, 0, h)[at]) << j << " " << d;
            }
          EXPECT_TRUE(std::equal(c.v_bf16(l, 0, h), c.v_bf16(l, 0, h) + n, a.v_bf16(l, 0, h)));
        }
      }
    a.Trim(20);
    for (int step = 0; step < 3; ++step) {
      const auto ids = step == 0 ? cont : Ids(1, 300 + step, t.vocab_size);
      EXPECT_EQ(model->Forward(Tokens(ids), &a).logits.data,
                model->Forward(Tokens(ids), &c).logits.data)
          << ComputeTypeName(ct) << " step " << step;
    }
  }
}

TEST(KVCacheBf16, TypeAndShapeErrors) {
  KVCache b(2, 1, 2, 8, 4, KVType::kBF16), f(2, 1, 2, 8, 4, KVType::kF32);
  EXPECT_EQ(b.capacity(), kKeyTile);  // bf16 keys come in whole tiles of positions
  EXPECT_EQ(f.capacity(), 4);
  EXPECT_EQ(b.BytesUsed() * 2, KVCache(2, 1, 2, 8, kKeyTile, KVType::kF32).BytesUsed());
  EXPECT_THROW(KVCache(2, 1, 2, 7, 4, KVType::kBF16), Error);  // odd head_dim: no pairs
  try {
    b.k(0, 0, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("bfloat16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.v_bf16(0, 0, 0), Error);
  EXPECT_THROW(b.CopyPrefixFrom(f, 0), Error);                                      // type
  EXPECT_THROW(b.CopyPrefixFrom(KVCache(2, 1, 2, 4, 4, KVType::kBF16), 0), Error);  // shape
  EXPECT_THROW(b.CopyPrefixFrom(KVCache(2, 1, 2, 8, 4, KVType::kBF16), 1), Error);  // too long
  b.CopyPrefixFrom(KVCache(2, 1, 2, 8, 4, KVType::kBF16), 0);
  EXPECT_EQ(b.length(), 0);
}

}  // namespace
}  // namespace plm
