// The fused attention kernels — many queries (flash-style on AVX512-BF16, the portable kernels
// elsewhere) and few queries on a bf16 KV cache (decode) — agree with a double-precision
// softmax(QK^T)V on the same bf16-rounded keys and values: grouped query heads, causal offsets
// (prefill after a cached prefix), key counts that cut the key blocks unevenly, padding, a row with
// no visible key, scores large enough that the running maximum moves between key blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/attention.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/flash_avx2.h"
#include "core/key_tiles.h"
#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<float> RandomBf16Values(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = Bf16ToF32(F32ToBf16(dist(rng)));
  return v;
}

struct Case {
  int64_t heads, nq, nk, hd;
  int64_t causal_offset;                 // < 0: bidirectional
  float q_scale;                         // large values make the online-softmax rescaling matter
  bool padding;                          // some keys invalid, and query 0 sees none of its keys
  bool bf16_cache;                       // k16/v16 instead of f32 k/v
  int64_t left_pad = 0;                  // keys [0, left_pad) invalid too (a left-padded batch row)
  float k_scale = 1.0f, v_scale = 1.0f;  // magnitudes of keys and values
  bool int8_scores = false;              // AttentionArgs::int8_scores
  float k_bias = 0.0f;                   // added to every key value (a common part of the keys)
};

// out[h][i][d] for queries laid out [nq][heads][hd] (as the decoder's q rows).
std::vector<double> Reference(const Case& c, const std::vector<float>& q,
                              const std::vector<float>& k, const std::vector<float>& v,
                              const std::vector<uint8_t>& valid, float scale) {
  const int64_t hd = c.hd;
  std::vector<double> out(static_cast<size_t>(c.nq * c.heads * hd), 0.0);
  for (int64_t h = 0; h < c.heads; ++h)
    for (int64_t i = 0; i < c.nq; ++i) {
      const float* qi = q.data() + (i * c.heads + h) * hd;
      const int64_t lim = c.causal_offset < 0 ? c.nk : std::min(c.nk, c.causal_offset + i + 1);
      std::vector<double> s(static_cast<size_t>(c.nk));
      std::vector<bool> seen(static_cast<size_t>(c.nk), false);
      double mx = -1e300;
      for (int64_t j = 0; j < lim; ++j) {
        if (!valid[j]) continue;
        double d = 0;
        for (int64_t t = 0; t < hd; ++t) d += static_cast<double>(qi[t]) * k[j * hd + t];
        s[j] = d * scale;
        seen[j] = true;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < c.nk; ++j)
        if (seen[j]) sum += std::exp(s[j] - mx);
      double* o = out.data() + (i * c.heads + h) * hd;
      for (int64_t j = 0; j < c.nk; ++j) {
        // No visible key at all: uniform over every key, as the reference's finfo.min masking.
        const double p = sum == 0  ? 1.0 / static_cast<double>(c.nk)
                         : seen[j] ? std::exp(s[j] - mx) / sum
                                   : 0.0;
        for (int64_t t = 0; t < hd; ++t) o[t] += p * v[j * hd + t];
      }
    }
  return out;
}

// Each query row's log-sum-exp of its scaled visible scores (one head, every key visible to every
// row), -inf when no key is visible: what AttentionArgs::lse holds.
std::vector<double> ReferenceLse(const Case& c, const std::vector<float>& q,
                                 const std::vector<float>& k, const std::vector<uint8_t>& valid,
                                 float scale) {
  std::vector<double> lse(static_cast<size_t>(c.nq), -std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < c.nq; ++i) {
    std::vector<double> s;
    for (int64_t j = 0; j < c.nk; ++j) {
      if (!valid[j]) continue;
      double d = 0;
      for (int64_t t = 0; t < c.hd; ++t)
        d += static_cast<double>(q[i * c.hd + t]) * k[j * c.hd + t];
      s.push_back(d * scale);
    }
    if (s.empty()) continue;
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (double x : s) sum += std::exp(x - mx);
    lse[i] = mx + std::log(sum);
  }
  return lse;
}

double RelativeL2(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(err / norm);
}

// The decode call `a` (one head, every key visible to every row) split over its keys into 2 and 3
// parts (DecodePart) and merged (MergeAttentionParts) gives the attention of the whole call `got`;
// its log-sum-exps (AttentionArgs::lse) are the reference's. f32 kernels (tol 1e-4): within 5e-5
// of the whole call (the exp's 4e-5 falls differently against each part's maximum; measured
// 1.2-1.5e-5) and 1e-5 of each lse; bf16 ones round each part's probabilities themselves.
void CheckDecodeSplit(const Case& c, const AttentionArgs& a, const std::vector<float>& got,
                      const std::vector<double>& want, const std::vector<double>& want_lse,
                      double tol) {
  const bool f32 = tol < 1e-3;
  std::vector<float> whole(got.size()), lse(static_cast<size_t>(c.nq));
  AttentionArgs with_lse = a;
  with_lse.out = whole.data();
  with_lse.lse = lse.data();
  FusedAttention(with_lse);
  EXPECT_EQ(whole, got) << "filling lse changed the output";
  for (int64_t i = 0; i < c.nq; ++i) {
    if (std::isinf(want_lse[i])) {
      EXPECT_EQ(lse[i], -std::numeric_limits<float>::infinity()) << "row " << i;
      continue;
    }
    EXPECT_NEAR(lse[i], want_lse[i], (f32 ? 1e-5 : 2e-2) * std::max(1.0, std::fabs(want_lse[i])))
        << "row " << i;
  }
  for (int64_t parts : {2, 3}) {
    if (c.nk < 32 * parts) continue;
    std::vector<std::vector<float>> outs(static_cast<size_t>(parts)),
        lses(static_cast<size_t>(parts));
    const float* out_ptrs[3];
    const float* lse_ptrs[3];
    int64_t keys[3];
    for (int64_t p = 0; p < parts; ++p) {
      outs[p].assign(got.size(), 0.0f);
      lses[p].assign(static_cast<size_t>(c.nq), 0.0f);
      FusedAttention(DecodePart(a, parts, p, outs[p].data(), lses[p].data()));
      out_ptrs[p] = outs[p].data();
      lse_ptrs[p] = lses[p].data();
      keys[p] = DecodeSplitPoint(c.nk, parts, p + 1) - DecodeSplitPoint(c.nk, parts, p);
      EXPECT_EQ(DecodeSplitPoint(c.nk, parts, p) % 32, 0);
      EXPECT_GT(keys[p], 0);
    }
    EXPECT_EQ(DecodeSplitPoint(c.nk, parts, parts), c.nk);
    std::vector<float> merged(got.size(), 0.0f);
    MergeAttentionParts(parts, out_ptrs, lse_ptrs, keys, c.nq, c.hd, merged.data(), c.hd);
    std::vector<double> whole_d(got.begin(), got.end());
    EXPECT_LT(RelativeL2(merged, whole_d), f32 ? 5e-5 : 1e-2) << parts << " parts vs one call";
    EXPECT_LT(RelativeL2(merged, want), tol) << parts << " parts vs the reference";
    // In place, as the decoder merges into part 0's rows.
    MergeAttentionParts(parts, out_ptrs, lse_ptrs, keys, c.nq, c.hd, outs[0].data(), c.hd);
    EXPECT_EQ(outs[0], merged) << "merging into part 0's rows";
  }
}

// tol: relative L2 error allowed against the double-precision reference.
void RunCase(const Case& c, uint32_t seed, double tol = 1.5e-2) {
  const int64_t hd = c.hd, H = c.heads;
  const auto q = RandomBf16Values(static_cast<size_t>(c.nq * H * hd), seed, c.q_scale);
  auto k = RandomBf16Values(static_cast<size_t>(c.nk * hd), seed + 1, c.k_scale);
  for (int64_t j = 0; j < c.nk; ++j)  // a bias that differs per dimension, the same for every key
    for (int64_t d = 0; d < hd; ++d)
      k[j * hd + d] = Bf16ToF32(F32ToBf16(k[j * hd + d] + c.k_bias * std::cos(0.7f * d)));
  const auto v = RandomBf16Values(static_cast<size_t>(c.nk * hd), seed + 2, c.v_scale);
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k16[i] = F32ToBf16(k[i]);
    v16[i] = F32ToBf16(v[i]);
  }
  std::vector<uint8_t> valid(static_cast<size_t>(c.nk), 1);
  if (c.padding) {
    valid[0] = 0;  // with causal offset 0, query 0 sees only key 0: no visible key
    for (int64_t j = 37; j < c.nk; j += 53) valid[j] = 0;
  }
  for (int64_t j = 0; j < std::min(c.left_pad, c.nk); ++j) valid[j] = 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> got(q.size(), 0.0f), one_by_one(q.size(), 0.0f);
  AttentionArgs a;
  a.q = q.data();
  a.q_stride = H * hd;
  a.q_head_stride = hd;
  a.heads = H;
  const std::vector<uint16_t> k16_tiles = ToKeyTiles(k16.data(), c.nk, hd);  // the cache layout
  if (c.bf16_cache) {
    a.k16 = k16_tiles.data();
    a.v16 = v16.data();
  } else {
    a.k = k.data();
    a.v = v.data();
  }
  a.kv_stride = hd;
  a.out = got.data();
  a.out_stride = H * hd;
  a.out_head_stride = hd;
  a.nq = c.nq;
  a.nk = c.nk;
  a.hd = hd;
  a.scale = scale;
  a.causal_offset = c.causal_offset;
  a.valid = c.padding ? valid.data() : nullptr;
  a.bf16 = true;
  a.int8_scores = c.int8_scores;
  FusedAttention(a);
  // The same heads one call each: the grouped call must give exactly the same values.
  for (int64_t h = 0; h < H; ++h) {
    AttentionArgs one = a;
    one.heads = 1;
    one.q = q.data() + h * hd;
    one.out = one_by_one.data() + h * hd;
    FusedAttention(one);
  }
  EXPECT_EQ(got, one_by_one) << "grouped heads differ from one head per call";

  const auto want = Reference(c, q, k, v, valid, scale);
  if (c.bf16_cache && H == 1 && c.causal_offset < 0 && FillsLse(a))
    CheckDecodeSplit(c, a, got, want, ReferenceLse(c, q, k, valid, scale), tol);
  // bf16 queries and probabilities (f32 accumulation): ~3 significant digits.
  EXPECT_LT(RelativeL2(got, want), tol)
      << "heads=" << H << " nq=" << c.nq << " nk=" << c.nk << " hd=" << hd
      << " off=" << c.causal_offset << " q_scale=" << c.q_scale << " pad=" << c.padding
      << " bf16_cache=" << c.bf16_cache << " int8_scores=" << c.int8_scores;
}

// Runs `run(tol)` with each set of kernels FusedAttention can choose on this CPU: bf16 products
// (AMD), f32 FMAs (Intel, where vdpbf16ps is slow) — the many-query flash kernels and the
// decode kernels alike —, where the CPU has AVX512-FP16, the fp16 many-query kernel, and the
// kernels of a CPU with AVX2 only (the bf16-cache kernel of core/attention_avx2.h, the flash
// kernel of core/flash_avx2.h on f32 keys). The f32 ones, with f32 queries (and f32 probabilities
// in the flash kernel), and the AVX2 ones must be within 1e-4 of the reference (measured ~1.2e-5;
// the bf16 ones 1.1e-3 to 6e-3), which also shows that they were the kernels that ran.
template <typename F>
void ForEachVendorKernel(const F& run) {
  const CpuFeatures saved = Cpu();
  for (int kernel : {0, 1, 2, 3}) {
    if (kernel == 2 && !saved.avx512fp16) continue;
    CpuFeatures f = saved;
    f.intel = kernel > 0;
    f.avx512fp16 = kernel == 2;
    if (kernel == 3) {  // a CPU with AVX2 only: the AVX2 bf16-cache kernel, f32 products
      f = test::Avx2Only(saved);
      if (!f.avx2_kernels()) continue;
    }
    SetCpuFeaturesForTesting(f);
    SCOPED_TRACE(kernel == 0   ? "bf16 flash kernel"
                 : kernel == 1 ? "f32 flash kernel"
                 : kernel == 2 ? "fp16 flash kernel"
                               : "AVX2 kernels");
    run((kernel == 1 && saved.avx512_full()) || kernel == 3 ? 1e-4 : 1.5e-2);
  }
  SetCpuFeaturesForTesting(saved);
}

TEST(FusedAttentionMany, CausalPrefillWithGroupedHeads) {
  // A whole prompt (offset 0) and a chunk after a cached prefix (offset = nk - nq).
  ForEachVendorKernel([](double tol) {
    for (bool cache16 : {true, false}) {
      RunCase({4, 300, 300, 64, 0, 1.0f, false, cache16}, 1, tol);
      RunCase({4, 40, 301, 64, 261, 1.0f, false, cache16}, 2, tol);
      RunCase({2, 17, 129, 128, 112, 1.0f, false, cache16}, 3, tol);
      RunCase({3, 21, 150, 96, 129, 1.0f, false, cache16}, 9, tol);  // hd = 96 (PE-G-like)
    }
  });
}

TEST(FusedAttentionMany, RunningMaximumMovesBetweenKeyBlocks) {
  // Scores of magnitude ~30: a later key block's maximum exceeds an earlier one's by far, so the
  // rescaling of the running output and sum must be right (a wrong factor shows as a large error).
  ForEachVendorKernel([](double tol) {
    RunCase({4, 64, 700, 64, 636, 8.0f, false, true}, 4, tol);
    RunCase({1, 33, 1025, 64, -1, 8.0f, false, false}, 5, tol);
  });
}

TEST(FusedAttentionMany, PaddingAndRowWithoutVisibleKeys) {
  ForEachVendorKernel([](double tol) {
    RunCase({4, 200, 200, 64, 0, 1.0f, true, true}, 6, tol);
    RunCase({1, 50, 333, 64, -1, 1.0f, true, false}, 7, tol);
  });
}

TEST(FusedAttentionMany, Fp16KernelScalesLargeAndSmallInputsIntoRange) {
  // fp16 tops out at 65504 and keeps only absolute steps of 6e-8 below 6e-5: the kernel scales
  // queries, keys and values by powers of two first. Values beyond the fp16 range under nearly
  // uniform attention, products of ~1e5, and values of ~1e-6 must come out as accurate as
  // unit-sized ones (without the scaling these give inf/NaN or errors of several %).
  ForEachVendorKernel([](double tol) {
    Case huge_v{2, 40, 300, 64, 260, 1e-3f, false, true};
    huge_v.v_scale = 1e5f;
    RunCase(huge_v, 15, tol);
    Case huge_qk{1, 20, 200, 64, -1, 30.0f, false, false};
    huge_qk.k_scale = 3000.0f;
    RunCase(huge_qk, 16, tol);
    Case tiny{1, 33, 100, 64, -1, 1.0f, false, false};
    tiny.v_scale = 1e-6f;
    RunCase(tiny, 17, tol);
  });
}

// One bidirectional call of 32 queries on 70 keys (hd 64) on an Intel-like CPU: the fp16 flash
// kernel (fp16, with int8 scores where `int8`) or the f32 one.
constexpr int64_t kSmallNq = 32, kSmallNk = 70, kSmallHd = 64;
std::vector<float> RunSmallCall(const std::vector<float>& q, const std::vector<float>& k,
                                const std::vector<float>& v, bool fp16, bool int8) {
  const CpuFeatures saved = Cpu();
  CpuFeatures f = saved;
  f.intel = true;
  f.avx512fp16 = fp16;
  SetCpuFeaturesForTesting(f);
  std::vector<float> out(static_cast<size_t>(kSmallNq * kSmallHd), 0.0f);
  FusedAttention({.q = q.data(),
                  .q_stride = kSmallHd,
                  .k = k.data(),
                  .v = v.data(),
                  .kv_stride = kSmallHd,
                  .out = out.data(),
                  .out_stride = kSmallHd,
                  .nq = kSmallNq,
                  .nk = kSmallNk,
                  .hd = kSmallHd,
                  .scale = 0.125f,
                  .causal_offset = -1,
                  .bf16 = true,
                  .int8_scores = int8});
  SetCpuFeaturesForTesting(saved);
  return out;
}

TEST(FusedAttentionMany, Fp16KernelDiffersFromF32AndFallsBackOnInfinity) {
  if (!Cpu().avx512fp16 || !Cpu().avx512_full()) GTEST_SKIP() << "no AVX512-FP16 on this CPU";
  auto q = RandomBf16Values(static_cast<size_t>(kSmallNq * kSmallHd), 21, 1.0f);
  auto k = RandomBf16Values(static_cast<size_t>(kSmallNk * kSmallHd), 22, 1.0f);
  const auto v = RandomBf16Values(static_cast<size_t>(kSmallNk * kSmallHd), 23, 1.0f);
  // Finite inputs: a different kernel (fp16 products) ran.
  EXPECT_NE(RunSmallCall(q, k, v, true, false), RunSmallCall(q, k, v, false, false));
  // An infinite key: the fp16 kernel hands the call to the f32 one (same bits, NaN included).
  k[5 * kSmallHd + 3] = std::numeric_limits<float>::infinity();
  const auto a = RunSmallCall(q, k, v, true, false), b = RunSmallCall(q, k, v, false, false);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST(FusedAttentionFew, DecodeStepsOnBf16Cache) {
  // Decode: the query heads of one KV head as rows (nq = 4, every key visible) on keys in the
  // cache's 32-position tiles; key counts not a multiple of 32, padding, large scores, and a few
  // new rows with a causal offset and a row with no visible key.
  ForEachVendorKernel([](double tol) {
    RunCase({1, 4, 700, 64, -1, 1.0f, false, true}, 10, tol);
    RunCase({1, 4, 9473, 64, -1, 8.0f, false, true}, 11, tol);
    RunCase({1, 4, 333, 128, -1, 1.0f, true, true}, 12, tol);
    RunCase({1, 7, 90, 64, 0, 1.0f, true, true}, 13, tol);
    RunCase({1, 5, 61, 96, 56, 1.0f, false, true}, 14, tol);
    // Whole key tiles hidden before the first visible key (left padding longer than a tile).
    RunCase({1, 4, 1000, 64, -1, 8.0f, true, true, 600}, 15, tol);
    // Other head dims (P·V without value pairs at 48 and 80), fewer than 4 rows.
    RunCase({1, 3, 150, 160, -1, 1.0f, true, true}, 16, tol);
    RunCase({1, 4, 77, 256, -1, 4.0f, false, true}, 17, tol);
    RunCase({1, 4, 45, 48, -1, 1.0f, false, true}, 18, tol);
    RunCase({1, 2, 33, 80, -1, 2.0f, true, true}, 19, tol);
    // No visible key at all: uniform attention over every key, split or not.
    RunCase({1, 4, 500, 64, -1, 1.0f, true, true, 500}, 20, tol);
  });
}

TEST(FusedAttentionFew, SplitRefusesWhatItCannotMerge) {
  const float out[1] = {1.0f}, lse[1] = {0.0f};
  const float* outs[1] = {out};
  const float* lses[1] = {lse};
  const int64_t keys[1] = {1};
  float merged[1] = {0.0f};
  MergeAttentionParts(1, outs, lses, keys, 1, 1, merged, 1);
  EXPECT_EQ(merged[0], 1.0f);
  EXPECT_THROW(MergeAttentionParts(0, outs, lses, keys, 1, 1, merged, 1), Error);
  EXPECT_THROW(MergeAttentionParts(17, outs, lses, keys, 1, 1, merged, 1), Error);
  const float none[1] = {-std::numeric_limits<float>::infinity()};
  const float* no_lses[1] = {none};
  const int64_t no_keys[1] = {0};
  EXPECT_THROW(MergeAttentionParts(1, outs, no_lses, no_keys, 1, 1, merged, 1), Error);

  // A decode call on a bf16 cache: split where the kernel fills lse; causal calls, parts under 32
  // keys and parts out of range are refused, and so is lse on a kernel that does not fill it.
  const int64_t nk = 100, hd = 64;
  const std::vector<uint16_t> k16(static_cast<size_t>(KeyTilePositions(nk) * hd), 0),
      v16(static_cast<size_t>(nk * hd), 0);
  const std::vector<float> q(static_cast<size_t>(4 * hd), 0.0f);
  std::vector<float> o(q.size()), l(4);
  const AttentionArgs a{.q = q.data(),
                        .q_stride = hd,
                        .kv_stride = hd,
                        .out = o.data(),
                        .out_stride = hd,
                        .nq = 4,
                        .nk = nk,
                        .hd = hd,
                        .k16 = k16.data(),
                        .v16 = v16.data(),
                        .bf16 = true};
  if (FillsLse(a)) {
    EXPECT_NO_THROW(FusedAttention(DecodePart(a, 3, 2, o.data(), l.data())));
    EXPECT_EQ(DecodePart(a, 3, 1, o.data(), l.data()).nk, 64 - 32);
    // Its prefetches may run on over the keys after it (up to the whole call's).
    EXPECT_EQ(DecodePart(a, 3, 1, o.data(), l.data()).nk_prefetch, nk - 32);
    EXPECT_THROW(DecodePart(a, 4, 0, o.data(), l.data()), Error);  // 25 keys a part
    EXPECT_THROW(DecodePart(a, 2, 2, o.data(), l.data()), Error);
    AttentionArgs causal = a;
    causal.causal_offset = 0;
    EXPECT_THROW(DecodePart(causal, 2, 0, o.data(), l.data()), Error);
  }
  AttentionArgs f32 = a;  // float32 keys: a kernel without lse
  const std::vector<float> k(static_cast<size_t>(nk * hd), 0.0f);
  f32.k16 = f32.v16 = nullptr;
  f32.k = f32.v = k.data();
  f32.lse = l.data();
  EXPECT_FALSE(FillsLse(f32));
  EXPECT_THROW(FusedAttention(f32), Error);
  EXPECT_THROW(DecodePart(f32, 2, 0, o.data(), l.data()), Error);
}

TEST(FusedAttentionMany, BidirectionalVisionTile) {
  // The vision tower's shape on the fixtures' scale: every query sees every key, one head per call.
  ForEachVendorKernel([](double tol) {
    RunCase({1, 257, 257, 64, -1, 1.0f, false, false}, 8, tol);
  });
}

TEST(FusedAttentionMany, Int8ScoresWithinTheirTolerance) {
  // int8 scores (the q8 vision tower; taken by the fp16 kernel where the CPU has VNNI, ignored by
  // the others): queries and keys quantized per row to 8 bits after the mean key is subtracted.
  // The vision tile's shape, keys with a large common part (the mean subtraction keeps their
  // differences at 8 bits), peaked attention (large scores), key counts that cut the tiles,
  // padding, causal rows and grouped heads. Errors measured 8e-3 to 1.5e-2 (peaked rows the
  // largest; fp16 scores 1.6e-3 to 4.8e-3, the bf16 kernel 5e-4 to 1.5e-3): bound 3e-2 for the fp16
  // kernel, the others keep theirs (the f32 one 1e-4: the flag changes nothing there).
  ForEachVendorKernel([](double tol) {
    const double t = tol < 1e-3 ? tol : 3e-2;
    Case tile{1, 257, 257, 64, -1, 1.0f, false, false};
    tile.int8_scores = true;
    RunCase(tile, 31, t);
    // Keys with a large common part: 8.0e-3 with the mean subtracted, 2.1e-2 without it.
    Case biased = tile;
    biased.k_bias = 8.0f;
    RunCase(biased, 32, tol < 1e-3 ? tol : 1.2e-2);
    Case peaked{1, 100, 300, 64, -1, 4.0f, false, false};
    peaked.int8_scores = true;
    RunCase(peaked, 33, t);
    Case masked{2, 40, 301, 64, 260, 1.0f, true, false};
    masked.int8_scores = true;
    RunCase(masked, 34, t);
    Case wide{1, 50, 77, 128, -1, 2.0f, false, false};
    wide.int8_scores = true;
    RunCase(wide, 35, t);
  });
}

TEST(FusedAttentionMany, KernelNamesReportInt8Scores) {
  const CpuFeatures& cpu = Cpu();
  const bool fp16 = cpu.avx512_full() && cpu.avx512fp16;  // (avx512_full includes VNNI)
  EXPECT_STREQ(ManyQueryKernelName(true, true),
               fp16 ? "fp16+int8-scores" : ManyQueryKernelName(true));
  EXPECT_STREQ(ManyQueryKernelName(true, false), ManyQueryKernelName(true));
  EXPECT_STREQ(ManyQueryKernelName(false, true), "reference");
}

// On a CPU whose kernel set is AVX2, the reduced paths' many-query calls on f32 keys take the
// AVX2 flash kernel (the cases above then test it), and reports name it; a bf16 cache, few
// queries, the f32 path or an unsupported head size keep the other kernels.
TEST(FusedAttentionMany, Avx2FlashKernelTakesManyQueriesOnAvx2Cpus) {
  const CpuFeatures saved = Cpu();
  const CpuFeatures avx2 = test::Avx2Only(saved);
  if (!avx2.avx2_kernels()) GTEST_SKIP() << "this CPU has no AVX2, FMA and F16C";
  SetCpuFeaturesForTesting(avx2);
  std::vector<float> q(64 * 300), out(q.size());
  AttentionArgs a;
  a.q = a.k = a.v = q.data();
  a.out = out.data();
  a.q_stride = a.kv_stride = a.out_stride = a.hd = 64;
  a.nq = a.nk = 300;
  a.bf16 = true;
  EXPECT_TRUE(UsesAvx2ManyQueryKernel(a));
  EXPECT_TRUE(UsesBf16ManyQueryKernel(a));  // callers skip transposing the keys
  EXPECT_STREQ(ManyQueryKernelName(true), "avx2-f32");
  EXPECT_STREQ(ManyQueryKernelName(false), "reference");
  AttentionArgs other = a;
  other.bf16 = false;
  EXPECT_FALSE(UsesAvx2ManyQueryKernel(other));
  other = a;
  other.nq = 3;
  EXPECT_FALSE(UsesAvx2ManyQueryKernel(other));
  other = a;
  other.hd = 40;
  EXPECT_FALSE(UsesAvx2ManyQueryKernel(other));
  const std::vector<uint16_t> k16(64 * 320);
  other = a;
  other.k16 = other.v16 = k16.data();
  EXPECT_FALSE(UsesAvx2ManyQueryKernel(other));
  SetCpuFeaturesForTesting(CpuFeatures{});
  EXPECT_FALSE(UsesAvx2ManyQueryKernel(a));
  SetCpuFeaturesForTesting(saved);
}

// x with x[i] = value.
std::vector<float> With(std::vector<float> x, size_t i, float value) {
  x[i] = value;
  return x;
}

TEST(FusedAttentionMany, Int8ScoresRunAndFallBackOnInfinity) {
  if (!Cpu().avx512fp16 || !Cpu().avx512_full()) GTEST_SKIP() << "no AVX512-FP16 on this CPU";
  const auto q = RandomBf16Values(static_cast<size_t>(kSmallNq * kSmallHd), 41, 1.0f);
  const auto k = RandomBf16Values(static_cast<size_t>(kSmallNk * kSmallHd), 42, 1.0f);
  const auto v = RandomBf16Values(static_cast<size_t>(kSmallNk * kSmallHd), 43, 1.0f);
  // Finite inputs: int8 scores ran (results differ from the fp16 scores').
  EXPECT_NE(RunSmallCall(q, k, v, true, true), RunSmallCall(q, k, v, true, false));
  // An infinite query, an infinite or NaN key (found while the keys are packed), keys whose sum
  // leaves the f32 range: handed to the f32 kernel like the fp16 one (same bits, NaN included).
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::vector<float>, std::vector<float>>> cases = {
      {With(q, 3 * kSmallHd + 7, -inf), k},
      {q, With(k, 5 * kSmallHd + 3, inf)},
      {q, With(k, 9 * kSmallHd + 60, std::numeric_limits<float>::quiet_NaN())},
      {q, With(With(k, 1 * kSmallHd + 2, 3e38f), 2 * kSmallHd + 2, 3e38f)}};
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& [qc, kc] = cases[c];
    const auto a = RunSmallCall(qc, kc, v, true, true), b = RunSmallCall(qc, kc, v, false, false);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "case " << c;
  }
}

}  // namespace
}  // namespace plm
