// The engine's pieces on their own: prefix keys (tokens + media hashes), the prefix-cache LRU
// (longest match, copies, eviction, near-duplicates) and TextStream's stop-string hold-back.
#include <gtest/gtest.h>

#include "plm/error.h"
#include "runtime/prefix_cache.h"
#include "runtime/text_stream.h"
#include "server/server_test_util.h"

namespace plm {
namespace {

ProcessorOutputs Inputs(const std::vector<int64_t>& ids, int64_t image_token,
                        const std::vector<float>& pixels, int64_t tiles) {
  ProcessorOutputs in;
  in.input_ids = ids;
  in.batch = 1;
  in.len = static_cast<int64_t>(ids.size());
  in.attention_mask.assign(ids.size(), 1);
  in.pixel_values = pixels;
  in.image_tiles = tiles;
  if (tiles > 0) in.tiles_per_image = {tiles};
  (void)image_token;
  return in;
}

TEST(PrefixKeys, TokensAndMediaHashes) {
  const int64_t img = 128002, vid = 128003;
  const std::vector<int64_t> ids = {1, 2, img, img, img, img, 3};
  const std::vector<float> a(2 * 12, 0.5f), b(2 * 12, 0.25f);
  const auto ka = PrefixKeys(Inputs(ids, img, a, 2), img, vid);
  const auto ka2 = PrefixKeys(Inputs(ids, img, a, 2), img, vid);
  const auto kb = PrefixKeys(Inputs(ids, img, b, 2), img, vid);
  ASSERT_EQ(ka.size(), ids.size());
  EXPECT_EQ(ka, ka2);
  EXPECT_EQ(ka[0], 1u);
  EXPECT_EQ(ka[6], 3u);
  EXPECT_NE(ka[2] >> 63, 0u) << "media keys have the top bit set";
  EXPECT_NE(ka[2], kb[2]) << "other pixels, other keys";
  EXPECT_EQ(ka[0], kb[0]);
  // Placeholders without pixels, or a count that does not split into tiles, are refused.
  EXPECT_THROW(PrefixKeys(Inputs(ids, img, {}, 0), img, vid), Error);
  EXPECT_THROW(PrefixKeys(Inputs(ids, img, std::vector<float>(3 * 12), 3), img, vid), Error);
}

class PrefixCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { pipe_ = test::LoadModel(test::ServerModels().at(0)); }
  const PerceptionLMForConditionalGeneration& model() const { return pipe_->model(); }

  // A real cache for `ids` and keys equal to the ids.
  KVCache Run(const std::vector<int64_t>& ids) const {
    KVCache c = model().NewCache(1, static_cast<int64_t>(ids.size()));
    ForwardInputs in;
    in.input_ids = ids;
    in.len = static_cast<int64_t>(ids.size());
    in.logits_to_keep = 1;
    model().Forward(in, &c);
    return c;
  }
  static std::vector<uint64_t> Keys(const std::vector<int64_t>& ids) {
    return {ids.begin(), ids.end()};
  }
  static std::vector<int64_t> Ids(int64_t start, int64_t n) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(start + i);
    return v;
  }
  std::shared_ptr<const Pipeline> pipe_;
};

TEST_F(PrefixCacheTest, LongestMatchCopiesThePrefixExactly) {
  const auto& t = model().config().text;
  PrefixCache cache(t, int64_t{64} << 20, 4);
  const auto a = Ids(100, 40);
  const KVCache ca = Run(a);
  cache.Store(Keys(a), ca, model());
  EXPECT_EQ(cache.entries(), 1);
  // A prompt that shares 25 positions with it.
  auto b = Ids(100, 25);
  for (int64_t i = 0; i < 10; ++i) b.push_back(5000 + i);
  const auto m = cache.Lookup(Keys(b));
  ASSERT_EQ(m.length, 25);
  const KVCache copy = cache.CopyPrefix(m, model(), 64);
  EXPECT_EQ(copy.length(), 25);
  EXPECT_GE(copy.capacity(), 64);
  for (int64_t l = 0; l < t.num_hidden_layers; ++l)
    for (int64_t h = 0; h < t.num_key_value_heads; ++h) {
      EXPECT_TRUE(std::equal(copy.k(l, 0, h), copy.k(l, 0, h) + 25 * t.head_dim, ca.k(l, 0, h)));
      EXPECT_TRUE(std::equal(copy.v(l, 0, h), copy.v(l, 0, h) + 25 * t.head_dim, ca.v(l, 0, h)));
    }
  // The same prompt again: all but its last position.
  EXPECT_EQ(cache.Lookup(Keys(a)).length, 39);
  // Shorter than min_reuse: nothing.
  EXPECT_EQ(cache.Lookup(Keys(Ids(100, 3))).length, 0);
  EXPECT_EQ(cache.Lookup(Keys(Ids(7, 30))).length, 0);
}

TEST_F(PrefixCacheTest, ExtensionsNearCopiesAndEviction) {
  const auto& t = model().config().text;
  const auto base = Ids(100, 40);
  PrefixCache cache(t, int64_t{64} << 20, 4);
  cache.Store(Keys(base), Run(base), model());
  // A longer conversation replaces the entry it extends.
  auto longer = base;
  for (int64_t i = 0; i < 20; ++i) longer.push_back(900 + i);
  cache.Store(Keys(longer), Run(longer), model());
  EXPECT_EQ(cache.entries(), 1);
  EXPECT_EQ(cache.Lookup(Keys(longer)).length, 59);
  // Storing a prefix of a stored entry adds nothing.
  cache.Store(Keys(base), Run(base), model());
  EXPECT_EQ(cache.entries(), 1);
  // The same 40-position prefix with another 8-position tail: the older variant (83% shared) is
  // dropped; one with only a short shared prefix is kept.
  auto variant = base;
  for (int64_t i = 0; i < 8; ++i) variant.push_back(3000 + i);
  auto longer2 = base;
  for (int64_t i = 0; i < 8; ++i) longer2.push_back(4000 + i);
  PrefixCache c2(t, int64_t{64} << 20, 4);
  c2.Store(Keys(variant), Run(variant), model());
  c2.Store(Keys(longer2), Run(longer2), model());
  EXPECT_EQ(c2.entries(), 1);
  EXPECT_EQ(c2.Lookup(Keys(variant)).length, 40) << "the shared prefix is still there";
  auto other = Ids(100, 5);
  for (int64_t i = 0; i < 40; ++i) other.push_back(6000 + i);
  c2.Store(Keys(other), Run(other), model());
  EXPECT_EQ(c2.entries(), 2);
  // A byte budget for about one entry keeps the most recent one.
  const int64_t one = c2.bytes() / 2;
  PrefixCache small(t, one + one / 2, 4);
  small.Store(Keys(variant), Run(variant), model());
  small.Store(Keys(other), Run(other), model());
  EXPECT_EQ(small.entries(), 1);
  EXPECT_LE(small.bytes(), one + one / 2);
  EXPECT_EQ(small.Lookup(Keys(other)).length, static_cast<int64_t>(other.size()) - 1);
  EXPECT_EQ(small.Lookup(Keys(variant)).length, 5);
  // A zero budget stores nothing.
  PrefixCache off(t, 0, 4);
  off.Store(Keys(base), Run(base), model());
  EXPECT_EQ(off.entries(), 0);
}

TEST_F(PrefixCacheTest, TextStreamHoldsBackPossibleStopStrings) {
  const auto& proc = pipe_->processor();
  const auto ids = proc.Encode("Hello world, this is the end. More text", false);
  // No stop strings: everything comes out, as the plain decoder gives it.
  {
    TextStream s(proc, {});
    std::string out;
    for (int64_t id : ids) out += s.Push(id);
    out += s.Finish();
    EXPECT_EQ(out, proc.Decode(ids));
    EXPECT_EQ(out, s.text());
    EXPECT_FALSE(s.stopped());
  }
  // A stop string spanning tokens: the text before it, nothing of it.
  {
    TextStream s(proc, {"the end", "never"});
    std::string out;
    for (int64_t id : ids) {
      out += s.Push(id);
      if (s.stopped()) break;
    }
    out += s.Finish();
    EXPECT_TRUE(s.stopped());
    EXPECT_EQ(out, "Hello world, this is ");
    EXPECT_EQ(s.text(), out);
  }
  // A partial match at the end that never completes is released by Finish.
  {
    TextStream s(proc, {"text!"});
    std::string out;
    for (int64_t id : ids) out += s.Push(id);
    EXPECT_NE(out, s.text()) << "\"text\" may start the stop string: held back";
    out += s.Finish();
    EXPECT_FALSE(s.stopped());
    EXPECT_EQ(out, proc.Decode(ids));
  }
}

}  // namespace
}  // namespace plm
