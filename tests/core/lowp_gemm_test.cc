// The reduced-precision GEMMs and fused attention agree with the float32 reference kernels, on the
// AVX-512 path and on the portable fallback, for decode-sized (m <= 8) and prefill-sized m.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/attention.h"
#include "core/cpu_features.h"
#include "core/dequant_gemm.h"
#include "core/dtype.h"
#include "core/key_tiles.h"
#include "core/lowp_gemm.h"
#include "core/ops.h"
#include "core/stream_prefetch.h"
#include "plm/error.h"
#include "plm/huge_page_allocator.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double RelErr(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * static_cast<double>(got[i] - want[i]);
    den += want[i] * static_cast<double>(want[i]);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// The kernel sets a CPU may run: all it has ("Native"), AVX2 without the AVX-512 kernels ("Avx2",
// core/gemv_avx2.h), none ("Generic", portable code).
enum class KernelSet { kNative, kAvx2, kGeneric };

class LowpGemm : public ::testing::TestWithParam<KernelSet> {
 protected:
  void SetUp() override {
    saved_ = Cpu();
    if (GetParam() == KernelSet::kAvx2) {
      if (!test::Avx2Only(saved_).avx2_kernels())
        GTEST_SKIP() << "this CPU has no AVX2, FMA and F16C";
      SetCpuFeaturesForTesting(test::Avx2Only(saved_));
    }
    if (GetParam() == KernelSet::kGeneric) SetCpuFeaturesForTesting(CpuFeatures{});
  }
  void TearDown() override { SetCpuFeaturesForTesting(saved_); }
  CpuFeatures saved_;
};

TEST_P(LowpGemm, MatchesF32) {
  for (int64_t m : {1, 3, 8, 9, 70}) {
    for (int64_t k : {64, 192, 100}) {
      const int64_t n = 37;
      auto x = Random(m * k, 1), w = Random(n * k, 2, 0.05f), bias = Random(n, 3);
      std::vector<float> ref(m * n), got(m * n);
      GemmF32(x.data(), w.data(), bias.data(), ref.data(), m, n, k);
      std::vector<uint16_t> wb(w.size());
      for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
      GemmBF16(x.data(), wb.data(), bias.data(), got.data(), m, n, k);
      EXPECT_LT(RelErr(got, ref), 1e-2) << "bf16 m=" << m << " k=" << k;
      Q8Matrix q8 = QuantizeQ8(w.data(), n, k);
      GemmQ8(x.data(), q8, bias.data(), got.data(), m);
      EXPECT_LT(RelErr(got, ref), 2e-2) << "q8 m=" << m << " k=" << k;
      if (k % 64 == 0) {
        Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
        GemmQ4(x.data(), q4, bias.data(), got.data(), m);
        EXPECT_LT(RelErr(got, ref), 0.15) << "q4 m=" << m << " k=" << k;
      }
    }
  }
}

TEST_P(LowpGemm, Q4RoundTrip) {
  auto w = Random(4 * 128, 5);
  Q4Matrix q4 = QuantizeQ4(w.data(), 4, 128);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 128; ++c) {
      float amax = 0;
      for (int64_t j = c / 32 * 32; j < c / 32 * 32 + 32; ++j)
        amax = std::max(amax, std::fabs(w[r * 128 + j]));
      // Half a step, or a full step for the clamped opposite-sign extreme (Q4_0 style).
      EXPECT_NEAR(Q4Value(q4, r, c), w[r * 128 + c], amax / 8 + 1e-5);
    }
}

// Per-row int8 activations as the kernels quantize them: q = round(x / s), s = max|x| / 127.
std::vector<int> QuantizeRowRef(const float* x, int64_t k, float* s) {
  float amax = 0;
  for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[j]));
  *s = amax > 0 ? amax / 127.0f : 1.0f;
  const float inv = 1.0f / *s;
  std::vector<int> q(k);
  for (int64_t j = 0; j < k; ++j)
    q[j] = static_cast<int>(std::nearbyint(std::clamp(x[j] * inv, -127.0f, 127.0f)));
  return q;
}

// Decode-sized products (every m from 1 to kSmallM, the batched decode step) against references
// of the same arithmetic: bf16-rounded inputs with float products; int8 activations times int8
// rows times the two scales; int8 activations times q4 blocks times the block scales. n is odd
// (partial row tiles), k covers tails of the vector width (bf16, q8) and odd numbers of 64-value
// groups (q4). The fused GemvMany (several outputs over the same input) must give the same.
TEST_P(LowpGemm, SmallMMatchesSameArithmetic) {
  const int64_t n = 45, n2 = 19;
  for (int64_t k : {64, 100, 192, 64 * 37, 2048}) {
    auto w = Random(n * k, 41, 0.05f), w2 = Random(n2 * k, 42, 0.05f);
    for (int64_t j = 0; j < k; ++j) w[3 * k + j] = 0.0f;  // an all-zero row
    std::vector<uint16_t> wb(w.size()), wb2(w2.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
    for (size_t i = 0; i < w2.size(); ++i) wb2[i] = F32ToBf16(w2[i]);
    const Q8Matrix q8 = QuantizeQ8(w.data(), n, k), q8b = QuantizeQ8(w2.data(), n2, k);
    const bool q4ok = k % 64 == 0;
    Q4Matrix q4, q4b;
    if (q4ok) {
      q4 = QuantizeQ4(w.data(), n, k);
      q4b = QuantizeQ4(w2.data(), n2, k);
    }
    for (int64_t m = 1; m <= kSmallM; ++m) {
      auto x = Random(m * k, 43 + m + k);
      auto bias = Random(n, 44), bias2 = Random(n2, 45);
      std::vector<float> want_b(m * n), want_q8(m * n), want_q4(m * n);
      for (int64_t i = 0; i < m; ++i) {
        float s = 0;
        const std::vector<int> xq = QuantizeRowRef(x.data() + i * k, k, &s);
        for (int64_t r = 0; r < n; ++r) {
          double db = 0, d4 = 0;
          int64_t d8 = 0;
          for (int64_t j = 0; j < k; ++j) {
            db +=
                static_cast<double>(Bf16ToF32(F32ToBf16(x[i * k + j]))) * Bf16ToF32(wb[r * k + j]);
            d8 += static_cast<int64_t>(xq[j]) * q8.q[r * k + j];
            if (q4ok) d4 += static_cast<double>(Q4Value(q4, r, j)) * xq[j];
          }
          want_b[i * n + r] = static_cast<float>(db) + bias[r];
          want_q8[i * n + r] = s * q8.scale[r] * static_cast<float>(d8) + bias[r];
          want_q4[i * n + r] = s * static_cast<float>(d4) + bias[r];
        }
      }
      const std::string what = "m=" + std::to_string(m) + " k=" + std::to_string(k);
      std::vector<float> got(m * n, -1.0f), many(m * n, -1.0f), many2(m * n2, -1.0f),
          single2(m * n2, -1.0f);
      // Runs GemvMany with two outputs (n and n2 rows) and checks both against the one-by-one
      // products when the fused path applies.
      const auto check_many = [&](GemvJob j1, GemvJob j2, const char* fmt) {
        j1.n = n;
        j1.bias = bias.data();
        j1.y = many.data();
        j2.n = n2;
        j2.bias = bias2.data();
        j2.y = many2.data();
        if (!GemvMany(x.data(), m, k, {j1, j2})) {
          EXPECT_FALSE(Cpu().avx512_full() || Cpu().avx2_kernels()) << fmt << " " << what;
          return;
        }
        EXPECT_LT(RelErr(many, got), 1e-6) << fmt << " many " << what;
        EXPECT_LT(RelErr(many2, single2), 1e-6) << fmt << " many (second) " << what;
      };
      GemmBF16(x.data(), wb.data(), bias.data(), got.data(), m, n, k);
      EXPECT_LT(RelErr(got, want_b), 1e-5) << "bf16 " << what;
      GemmBF16(x.data(), wb2.data(), bias2.data(), single2.data(), m, n2, k);
      GemvJob b1, b2;
      b1.bf16 = wb.data();
      b2.bf16 = wb2.data();
      check_many(b1, b2, "bf16");

      GemmQ8(x.data(), q8, bias.data(), got.data(), m);
      EXPECT_LT(RelErr(got, want_q8), 1e-5) << "q8 " << what;
      GemmQ8(x.data(), q8b, bias2.data(), single2.data(), m);
      GemvJob e1, e2;
      e1.q8 = &q8;
      e2.q8 = &q8b;
      check_many(e1, e2, "q8");

      if (!q4ok) continue;
      GemmQ4(x.data(), q4, bias.data(), got.data(), m);
      EXPECT_LT(RelErr(got, want_q4), 1e-5) << "q4 " << what;
      GemmQ4(x.data(), q4b, bias2.data(), single2.data(), m);
      GemvJob f1, f2;
      f1.q4 = &q4;
      f2.q4 = &q4b;
      check_many(f1, f2, "q4");
    }
  }
}

// Decode-sized q8 products are exact for every int8 weight, -128 included (a q8 folder is mapped
// as stored; QuantizeQ8 itself gives [-127, 127]): the AVX2 kernel's sign trick takes |w| as the
// unsigned operand for that reason.
TEST_P(LowpGemm, Q8DecodeTakesEveryInt8Weight) {
  const int64_t n = 9, k = 100;
  Q8Matrix w;
  w.Allocate(n, k);
  std::mt19937 rng(7);
  for (int64_t r = 0; r < n; ++r) {
    int32_t sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int8_t v = (j + r) % 3 == 0 ? int8_t{-128} : static_cast<int8_t>(rng() % 256 - 128);
      w.q_own[r * k + j] = v;
      sum += v;
    }
    w.sum_own[r] = sum;
    w.scale_own[r] = 0.01f * static_cast<float>(r + 1);
  }
  for (int64_t m : {1, 3}) {
    const auto x = Random(m * k, 8 + m);
    std::vector<float> got(m * n), want(m * n);
    for (int64_t i = 0; i < m; ++i) {
      float s = 0;
      const std::vector<int> xq = QuantizeRowRef(x.data() + i * k, k, &s);
      for (int64_t r = 0; r < n; ++r) {
        int64_t d = 0;
        for (int64_t j = 0; j < k; ++j) d += static_cast<int64_t>(xq[j]) * w.q[r * k + j];
        want[i * n + r] = s * w.scale[r] * static_cast<float>(d);
      }
    }
    GemmQ8(x.data(), w, nullptr, got.data(), m);
    EXPECT_LT(RelErr(got, want), 1e-6) << "m=" << m;
  }
}

// The epilogues fused into the GEMMs' output pass give what the separate steps give: the plain
// GEMM (same format) then bias, GeluFast, or y += gamma * v; for decode-sized and large m (the
// int8 GEMMs' rescaling pass, with q4's panels) and with or without bias / gamma.
TEST_P(LowpGemm, EpiloguesMatchSeparateSteps) {
  const int64_t n = 48, k = 128;
  auto w = Random(n * k, 51, 0.05f), bias = Random(n, 52), gamma = Random(n, 53);
  Q8Matrix q8 = QuantizeQ8(w.data(), n, k);
  Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
  for (int64_t m : {1, 5, 40}) {
    auto x = Random(m * k, 54 + m), base = Random(m * n, 55 + m);
    for (int fmt = 0; fmt < 2; ++fmt) {
      auto gemm = [&](const float* b, float* y, const GemmEpilogue& ep) {
        if (fmt == 0) {
          GemmQ8(x.data(), q8, b, y, m, ep);
        } else {
          GemmQ4(x.data(), q4, b, y, m, ep);
        }
      };
      for (const float* b : std::vector<const float*>{nullptr, bias.data()}) {
        const std::string what = std::string(fmt == 0 ? "q8" : "q4") + " m=" + std::to_string(m) +
                                 (b ? " bias" : " no bias");
        std::vector<float> plain(m * n);
        gemm(nullptr, plain.data(), {});
        std::vector<float> v = plain;  // + bias
        if (b != nullptr)
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) v[i * n + j] += b[j];
        std::vector<float> got(m * n);
        gemm(b, got.data(), {});
        EXPECT_LT(RelErr(got, v), 1e-6) << what << " store";
        GemmEpilogue gelu;
        gelu.kind = GemmEpilogue::Kind::kGelu;
        gemm(b, got.data(), gelu);
        std::vector<float> want = v;
        GeluFastInPlace(want.data(), m * n);
        EXPECT_LT(RelErr(got, want), 1e-6) << what << " gelu";
        for (const float* g : std::vector<const float*>{nullptr, gamma.data()}) {
          GemmEpilogue add;
          add.kind = GemmEpilogue::Kind::kAddScaled;
          add.gamma = g;
          got = base;
          gemm(b, got.data(), add);
          want = base;
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) want[i * n + j] += (g ? g[j] : 1.0f) * v[i * n + j];
          EXPECT_LT(RelErr(got, want), 1e-6) << what << (g ? " add gamma" : " add");
        }
      }
    }
  }
}

// No epilogue, GELU, and a scaled add with gamma: the epilogues the packed paths must all honour.
std::vector<GemmEpilogue> EveryEpilogue(const float* gamma) {
  GemmEpilogue gelu, add;
  gelu.kind = GemmEpilogue::Kind::kGelu;
  add.kind = GemmEpilogue::Kind::kAddScaled;
  add.gamma = gamma;
  return {GemmEpilogue{}, gelu, add};
}

std::string Describe(int64_t n, int64_t k, int64_t m, const GemmEpilogue& ep) {
  return "n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(m) +
         " epilogue " + std::to_string(static_cast<int>(ep.kind));
}

// Two packed matrices (`packed`, and a second one quantized from seed `seed2`) over the same
// input in one GemvMany pass == one GEMM each on the plain rows; a packed and a plain matrix
// cannot share one pass. Matrix: Q8Matrix or Q4Matrix.
template <typename Matrix>
void ExpectGemvManyOfPacked(const std::vector<float>& x, int64_t m, int64_t n, int64_t k,
                            const Matrix& plain, const Matrix& packed,
                            const std::vector<float>& bias, uint32_t seed2) {
  constexpr bool kQ8 = std::is_same_v<Matrix, Q8Matrix>;
  auto quantize = [&] {
    const auto w = Random(n * k, seed2, 0.05f);
    if constexpr (kQ8) {
      return QuantizeQ8(w.data(), n, k);
    } else {
      return QuantizeQ4(w.data(), n, k);
    }
  };
  auto gemm = [&](const Matrix& w, const float* b, float* y) {
    if constexpr (kQ8) {
      GemmQ8(x.data(), w, b, y, m);
    } else {
      GemmQ4(x.data(), w, b, y, m);
    }
  };
  auto job = [&](const Matrix& w, const float* b, float* y) {
    GemvJob j;
    if constexpr (kQ8) {
      j.q8 = &w;
    } else {
      j.q4 = &w;
    }
    j.n = n;
    j.bias = b;
    j.y = y;
    return j;
  };
  const Matrix plain2 = quantize();
  Matrix packed2 = quantize();
  if constexpr (kQ8) {
    ASSERT_TRUE(PackQ8(&packed2));
  } else {
    ASSERT_TRUE(PackQ4(&packed2));
  }
  std::vector<float> y1(m * n), y2(m * n), w1(m * n), w2(m * n);
  ASSERT_TRUE(GemvMany(x.data(), m, k,
                       {job(packed, bias.data(), y1.data()), job(packed2, nullptr, y2.data())}));
  gemm(plain, bias.data(), w1.data());
  gemm(plain2, nullptr, w2.data());
  EXPECT_LT(RelErr(y1, w1), 1e-6) << "GemvMany n=" << n << " m=" << m;
  EXPECT_LT(RelErr(y2, w2), 1e-6) << "GemvMany n=" << n << " m=" << m;
  EXPECT_FALSE(GemvMany(x.data(), m, k,
                        {job(packed, bias.data(), y1.data()), job(plain2, nullptr, y2.data())}));
}

// Weights packed into the blocked layout give the same integer products as the plain rows: bit
// for bit for m > kSmallM (our many-row blocked kernel against oneDNN on the rows, with the same
// rescale and epilogue rounding), to rounding for decode-sized m (the blocked and the row
// kernels); every epilogue; sizes that are not multiples of the 64 x 64 blocks (padding),
// k not a multiple of 4; more than 512 inputs and 8 output blocks per thread (the
// many-row kernel's passes); and the merged decode pass (GemvMany) over several packed matrices.
TEST_P(LowpGemm, PackedQ8MatchesPlainRows) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {80, 192}, {37, 100}, {128, 64}, {1100, 300}, {200, 1100}}) {
    auto w = Random(n * k, 61, 0.05f), bias = Random(n, 62), gamma = Random(n, 63);
    const Q8Matrix plain = QuantizeQ8(w.data(), n, k);
    Q8Matrix packed = QuantizeQ8(w.data(), n, k);
    const bool ok = PackQ8(&packed);
    // Portable path (or a CPU without the AVX-512 kernels, e.g. PLM_CPU=generic): nothing to
    // pack into, the matrix is left as it was.
    if (!Cpu().avx512_full()) {
      EXPECT_FALSE(ok);
      EXPECT_NE(packed.q, nullptr);
      return;
    }
    ASSERT_TRUE(ok);
    EXPECT_EQ(packed.q, nullptr);
    EXPECT_TRUE(packed.q_own.empty());
    // GemmQ8Made (below) only where it makes the rows itself: packed weights, many rows.
    EXPECT_FALSE(GemmQ8MakesRows(plain, 1600));
    try {
      GemmQ8Made([](int64_t, int64_t, float*) {}, plain, nullptr, nullptr, 1600);
      ADD_FAILURE() << "GemmQ8Made on unpacked weights must throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInternal);
    }
    EXPECT_EQ(packed.bytes(),
              static_cast<size_t>((n + 63) / 64 * 64 * ((k + 63) / 64 * 64) + 8 * n));
    for (int64_t m : {1, 3, 5, 8, 9, 40, 1600}) {  // 1600: several row panels; two oneDNN calls
      auto x = Random(m * k, 64 + m), base = Random(m * n, 65 + m);
      for (const GemmEpilogue& ep : EveryEpilogue(gamma.data())) {
        std::vector<float> want = base, got = base;
        GemmQ8(x.data(), plain, bias.data(), want.data(), m, ep);
        GemmQ8(x.data(), packed, bias.data(), got.data(), m, ep);
        const std::string what = Describe(n, k, m, ep);
        if (m > kSmallM) {
          EXPECT_EQ(got, want) << what;
          // The same rows made on demand, a few per call in each thread (GemmQ8Made, e.g. a
          // LayerNorm fused into the quantization): bit for bit, every row made exactly once.
          ASSERT_TRUE(GemmQ8MakesRows(packed, m));
          std::vector<float> made = base;
          std::vector<int> times(static_cast<size_t>(m), 0);
          std::mutex mu;
          GemmQ8Made(
              [&](int64_t b, int64_t e, float* out) {
                std::copy(x.begin() + b * k, x.begin() + e * k, out);
                const std::lock_guard<std::mutex> lock(mu);
                for (int64_t i = b; i < e; ++i) ++times[static_cast<size_t>(i)];
              },
              packed, bias.data(), made.data(), m, ep);
          EXPECT_EQ(made, want) << what;
          EXPECT_EQ(std::count(times.begin(), times.end(), 1), m) << what;
        } else {
          EXPECT_LT(RelErr(got, want), 1e-6) << what;
        }
      }
      if (m > kSmallM) continue;
      EXPECT_FALSE(GemmQ8MakesRows(packed, m));
      ExpectGemvManyOfPacked<Q8Matrix>(x, m, n, k, plain, packed, bias, 66);
    }
  }
}

// q4 packed into its blocked layout: every m runs the blocked kernel (the same integer block
// sums as the row kernels: to rounding against them for decode-sized m; large m against the
// plain rows' int8 expansion, which rounds each weight once more); sizes not a multiple of the
// 64-output blocks; every epilogue; the merged decode pass over several packed matrices.
TEST_P(LowpGemm, PackedQ4MatchesPlainRows) {
  for (const auto& [n, k] :
       std::vector<std::pair<int64_t, int64_t>>{{80, 192}, {37, 64}, {128, 256}}) {
    auto w = Random(n * k, 71, 0.05f), bias = Random(n, 72), gamma = Random(n, 73);
    const Q4Matrix plain = QuantizeQ4(w.data(), n, k);
    Q4Matrix packed = QuantizeQ4(w.data(), n, k);
    const bool ok = PackQ4(&packed);
    if (!Cpu().avx512_full()) {  // nothing to pack into (as above)
      EXPECT_FALSE(ok);
      EXPECT_NE(packed.q, nullptr);
      return;
    }
    ASSERT_TRUE(ok);
    EXPECT_EQ(packed.q, nullptr);
    for (int64_t m : {1, 2, 3, 8, 9, 40}) {
      auto x = Random(m * k, 74 + m), base = Random(m * n, 75 + m);
      for (const GemmEpilogue& ep : EveryEpilogue(gamma.data())) {
        std::vector<float> want = base, got = base;
        GemmQ4(x.data(), plain, bias.data(), want.data(), m, ep);
        GemmQ4(x.data(), packed, bias.data(), got.data(), m, ep);
        const std::string what = Describe(n, k, m, ep);
        // Large m: near the plain rows (whose int8 expansion rounds once more), and each row
        // exactly what the decode-sized call gives for it alone.
        EXPECT_LT(RelErr(got, want), m > kSmallM ? 2e-2 : 1e-6) << what;
        if (m > kSmallM && ep.kind != GemmEpilogue::Kind::kAddScaled) {
          for (int64_t i = 0; i < m; ++i) {
            std::vector<float> one(n);
            GemmQ4(x.data() + i * k, packed, bias.data(), one.data(), 1, ep);
            ASSERT_TRUE(std::equal(one.begin(), one.end(), got.begin() + i * n))
                << what << " row " << i;
          }
        }
      }
      if (m > kSmallM) continue;
      ExpectGemvManyOfPacked<Q4Matrix>(x, m, n, k, plain, packed, bias, 76);
    }
  }
}

// bf16 weights in the blocked layout give the row kernels' results to f32 rounding (another
// summation order): decode-sized m (blocked kernel), large m (oneDNN on the blocked layout),
// sizes that are not multiples of the blocks, the merged decode pass.
TEST_P(LowpGemm, PackedBf16MatchesRows) {
  for (const auto& [n, k] :
       std::vector<std::pair<int64_t, int64_t>>{{80, 192}, {37, 100}, {128, 64}}) {
    auto w = Random(n * k, 81, 0.05f), bias = Random(n, 82);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
    const auto packed = PackBf16(wb.data(), n, k);
    if (!Cpu().avx512_full()) {  // nothing to pack into (as above)
      EXPECT_EQ(packed, nullptr);
      return;
    }
    ASSERT_NE(packed, nullptr);
    EXPECT_EQ(PackedBf16Bytes(*packed),
              static_cast<size_t>((n + 63) / 64 * 64 * ((k + 31) / 32 * 32) * 2));
    for (int64_t m : {1, 3, 5, 8, 9, 40, 1600}) {
      auto x = Random(m * k, 83 + m);
      std::vector<float> want(m * n), got(m * n);
      GemmBF16(x.data(), wb.data(), bias.data(), want.data(), m, n, k);
      GemmBF16Packed(x.data(), *packed, bias.data(), got.data(), m);
      EXPECT_LT(RelErr(got, want), 1e-5) << "n=" << n << " k=" << k << " m=" << m;
      if (m > kSmallM) continue;
      std::vector<uint16_t> wb2(wb.rbegin(), wb.rend());
      const auto packed2 = PackBf16(wb2.data(), n, k);
      ASSERT_NE(packed2, nullptr);
      std::vector<float> y1(m * n), y2(m * n), w2(m * n);
      GemvJob j1, j2;
      j1.bf16p = packed.get();
      j1.n = n;
      j1.bias = bias.data();
      j1.y = y1.data();
      j2.bf16p = packed2.get();
      j2.n = n;
      j2.y = y2.data();
      ASSERT_TRUE(GemvMany(x.data(), m, k, {j1, j2}));
      GemmBF16(x.data(), wb2.data(), nullptr, w2.data(), m, n, k);
      EXPECT_LT(RelErr(y1, want), 1e-5) << "GemvMany n=" << n << " m=" << m;
      EXPECT_LT(RelErr(y2, w2), 1e-5) << "GemvMany n=" << n << " m=" << m;
    }
  }
}

// The bf16 layout written to disk (`plm quantize --dtype bf16`): BlockBf16Rows gives PackBf16's
// bytes, UnblockBf16 gives the rows back, and blocked weights used in place compute what packed
// ones do (none without AVX512-BF16: the loader then rebuilds rows).
TEST_P(LowpGemm, BlockedBf16InPlaceMatchesPacked) {
  for (const auto& [n, k] :
       std::vector<std::pair<int64_t, int64_t>>{{80, 192}, {37, 100}, {128, 64}, {1, 31}}) {
    auto w = Random(n * k, 91, 0.05f);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
    const int64_t bytes = Bf16BlockedBytes(n, k);
    ASSERT_EQ(bytes % 64, 0);
    // 64-byte aligned, as in a written checkpoint; padding must come out zero.
    std::vector<uint16_t, HugePageAllocator<uint16_t>> blocked(static_cast<size_t>(bytes / 2),
                                                               0xffff);
    BlockBf16Rows(wb.data(), n, k, 0, (n + 63) / 64, blocked.data());
    std::vector<uint16_t> back(wb.size());
    UnblockBf16(blocked.data(), n, k, back.data());
    EXPECT_EQ(back, wb) << n << "x" << k;
    if (n % 64 != 0 || k % 32 != 0) {  // the last block's last output / input pair: padding
      EXPECT_EQ(blocked.back(), 0) << n << "x" << k;
    }
    const auto packed = PackBf16(wb.data(), n, k);
    const auto in_place = UseBlockedBf16(blocked.data(), n, k);
    ASSERT_EQ(packed == nullptr, in_place == nullptr);
    if (!Cpu().avx512_full()) {
      EXPECT_EQ(in_place, nullptr);
      continue;
    }
    ASSERT_EQ(PackedBf16Bytes(*in_place), static_cast<size_t>(bytes));
    for (int64_t m : {1, 5, 40}) {
      auto x = Random(m * k, 92 + m);
      std::vector<float> a(m * n), b(m * n);
      GemmBF16Packed(x.data(), *packed, nullptr, a.data(), m);
      GemmBF16Packed(x.data(), *in_place, nullptr, b.data(), m);
      EXPECT_EQ(a, b) << n << "x" << k << " m=" << m;
    }
    EXPECT_THROW(UseBlockedBf16(blocked.data() + 1, n, k), Error);
  }
}

// A row's result does not depend on how many rows go with it: every row of a many-row product
// (prompts, vision tiles) equals the same row computed alone (a decode step), for each format and
// epilogue. Without the AVX-512 kernels the two sizes run different code (f32 panels of W,
// core/dequant_gemm.h, against the int8 and bf16 GEMVs), so the activations must be rounded alike.
// (The AVX-512 q4 path re-rounds W to int8 rows for many rows, documented: q4 checked elsewhere.)
TEST_P(LowpGemm, ManyRowsMatchRowsAlone) {
  const int64_t n = 70, k = 192, m = 37;
  auto w = Random(n * k, 61, 0.05f), bias = Random(n, 62), gamma = Random(n, 63);
  auto x = Random(m * k, 64);
  for (int64_t j = 0; j < k; ++j) x[5 * k + j] = 0.0f;  // an all-zero row
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
  const Q8Matrix q8 = QuantizeQ8(w.data(), n, k);
  const Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
  const bool q4_alike = !Cpu().avx512_full();
  for (int fmt = 0; fmt < 3; ++fmt) {
    if (fmt == 2 && !q4_alike) continue;
    for (const auto kind : {GemmEpilogue::Kind::kStore, GemmEpilogue::Kind::kAddScaled}) {
      GemmEpilogue ep;
      ep.kind = kind;
      if (kind == GemmEpilogue::Kind::kAddScaled) ep.gamma = gamma.data();
      std::vector<float> many(m * n, 0.5f), alone(m * n, 0.5f);
      auto run = [&](const float* xi, float* yi, int64_t rows) {
        if (fmt == 0) {
          if (kind != GemmEpilogue::Kind::kStore) return false;  // (GemmBF16 has no epilogue)
          GemmBF16(xi, wb.data(), bias.data(), yi, rows, n, k);
        } else if (fmt == 1) {
          GemmQ8(xi, q8, bias.data(), yi, rows, ep);
        } else {
          GemmQ4(xi, q4, bias.data(), yi, rows, ep);
        }
        return true;
      };
      if (!run(x.data(), many.data(), m)) continue;
      for (int64_t i = 0; i < m; ++i) run(x.data() + i * k, alone.data() + i * n, 1);
      EXPECT_LT(RelErr(many, alone), 1e-5)
          << "format " << fmt << " epilogue " << static_cast<int>(kind);
    }
  }
}

// Many-row q4 products at the extremes: nibbles of 15 (value 7) against activations of 127 make
// the AVX2 kernel's int16 sums of a block's 8 groups reach 8 * 2 * 15 * 127 = 30480 (two blocks'
// worth would wrap), and negative activations the other sign; against exact sums of the same
// int8 activations and q4 values.
TEST_P(LowpGemm, Q4ManyRowsAtTheExtremes) {
  const int64_t n = 21, k = 128, m = 11;
  std::vector<float> w(n * k, 0.7f);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t b = 0; b < k / kQ4Block; ++b) w[r * k + b * kQ4Block] = -0.8f;  // value -8
  for (int64_t j = 0; j < k; ++j) w[3 * k + j] = -w[3 * k + j];  // a row of the other sign
  const Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
  EXPECT_FLOAT_EQ(Q4Value(q4, 0, 1) / Q4Value(q4, 0, 0), -7.0f / 8.0f);  // nibbles 15 and 0
  std::vector<float> x(m * k, 1.0f);
  for (int64_t j = 0; j < k; ++j) x[2 * k + j] = -1.0f;     // -127 everywhere
  for (int64_t j = 0; j < k; j += 2) x[5 * k + j] = -1.0f;  // alternating
  std::vector<float> got(m * n), want(m * n);
  GemmQ4(x.data(), q4, nullptr, got.data(), m);
  for (int64_t i = 0; i < m; ++i) {
    float sx = 0;
    const std::vector<int> xq = QuantizeRowRef(x.data() + i * k, k, &sx);
    for (int64_t r = 0; r < n; ++r) {
      double d = 0;
      for (int64_t j = 0; j < k; ++j) d += static_cast<double>(Q4Value(q4, r, j)) * xq[j];
      want[i * n + r] = sx * static_cast<float>(d);
    }
  }
  // (The AVX-512 path re-rounds W to int8 rows for many rows: its own bound.)
  EXPECT_LT(RelErr(got, want), Cpu().avx512_full() ? 1e-2 : 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Paths, LowpGemm,
                         ::testing::Values(KernelSet::kNative, KernelSet::kAvx2,
                                           KernelSet::kGeneric),
                         [](const auto& info) {
                           switch (info.param) {
                             case KernelSet::kNative:
                               return "Native";
                             case KernelSet::kAvx2:
                               return "Avx2";
                             case KernelSet::kGeneric:
                               break;
                           }
                           return "Generic";
                         });

// The f32 panels of W that many-row products use without the AVX-512 kernels hold the stored
// values: bf16 widened, q8 as q * scale, q4 as (nibble - 8) * block scale (Q4Value), exactly.
TEST(DequantGemm, PanelsHoldTheStoredValues) {
  const int64_t n = 9, k = 128;
  auto w = Random(n * k, 71, 0.05f);
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
  const Q8Matrix q8 = QuantizeQ8(w.data(), n, k);
  const Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
  std::vector<float> b(3 * k), e(3 * k), f(3 * k);
  DequantizeBf16Rows(wb.data(), k, 4, 7, b.data());
  DequantizeQ8Rows(q8, 4, 7, e.data());
  DequantizeQ4Rows(q4, 4, 7, f.data());
  for (int64_t r = 4; r < 7; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t at = (r - 4) * k + j;
      EXPECT_EQ(b[at], Bf16ToF32(wb[r * k + j]));
      EXPECT_EQ(e[at], static_cast<float>(q8.q[r * k + j]) * q8.scale[r]);
      EXPECT_EQ(f[at], Q4Value(q4, r, j)) << r << " " << j;
    }
}

// The large-m q4 path expands rows to per-row int8 on the fly; the AVX-512 and portable
// expansions must give identical bytes and scales (and a few rows with zero blocks).
TEST(LowpGemmQ4, ExpansionSameOnEveryPath) {
  const int64_t n = 7, k = 64 * 37;  // 74 blocks: a partial group of 16 scales
  auto w = Random(n * k, 11, 0.05f);
  for (int64_t j = 0; j < 64; ++j) w[2 * k + j] = 0.0f;  // all-zero blocks
  for (int64_t j = 0; j < k; ++j) w[4 * k + j] = 0.0f;   // an all-zero row
  const Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
  std::vector<int8_t> qa(n * k), qb(n * k);
  std::vector<float> sa(n), sb(n);
  ExpandQ4Rows(q4, 0, n, qa.data(), sa.data());
  const CpuFeatures saved = Cpu();
  SetCpuFeaturesForTesting(CpuFeatures{});
  ExpandQ4Rows(q4, 0, n, qb.data(), sb.data());
  SetCpuFeaturesForTesting(saved);
  EXPECT_EQ(qa, qb);
  EXPECT_EQ(sa, sb);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; c += 97)
      EXPECT_NEAR(qa[r * k + c] * sa[r], Q4Value(q4, r, c), sa[r] * 0.5f + 1e-7f);
}

// The m == 1 q4 decode kernel (int8 activations in a lo/hi chunk layout, unsigned nibbles, the
// zero point removed through per-block activation sums, four rows at a time) against a scalar
// reference of the same integer arithmetic: per-row int8 activations, exact block dot products,
// f32 block scales. Shapes cover rows not a multiple of 4, an odd number of 64-groups and a
// partial group of 16 scales, zero rows and the GemvMany entry point.
TEST(LowpGemmQ4, DecodeKernelMatchesReference) {
  for (int64_t k : {64, 192, 64 * 37, 2048}) {
    const int64_t n = 45;
    auto x = Random(k, 21 + k), w = Random(n * k, 22, 0.05f);
    for (int64_t j = 0; j < k; ++j) w[3 * k + j] = 0.0f;
    const Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    const float s = amax / 127.0f;
    std::vector<int> xq(k);
    for (int64_t j = 0; j < k; ++j)
      xq[j] = static_cast<int>(std::nearbyint(std::clamp(x[j] / s, -127.0f, 127.0f)));
    std::vector<float> want(n), got(n, -1.0f), got2(n, -1.0f);
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t b = 0; b < k / kQ4Block; ++b) {
        // Q4Value = q * scale; the block's integer dot product times its scale, in double.
        for (int64_t j = b * kQ4Block; j < (b + 1) * kQ4Block; ++j)
          acc += static_cast<double>(Q4Value(q4, r, j)) * xq[j];
      }
      want[r] = static_cast<float>(acc) * s;
    }
    GemmQ4(x.data(), q4, nullptr, got.data(), 1);
    EXPECT_LT(RelErr(got, want), 1e-5) << "k=" << k;
    std::vector<GemvJob> jobs(1);
    jobs[0].q4 = &q4;
    jobs[0].n = n;
    jobs[0].y = got2.data();
    if (GemvMany(x.data(), 1, k, jobs)) {
      EXPECT_LT(RelErr(got2, want), 1e-5) << "many k=" << k;
    }
    EXPECT_EQ(got[3], 0.0f);
    for (int64_t r = 0; r < n; ++r) EXPECT_NEAR(got[r], want[r], 1e-4f * (1 + std::fabs(want[r])));
  }
}

// The L2 prefetch distance of the decode kernels (per vendor, PLM_L2_PREFETCH) only moves
// prefetches: every blocked format gives the same bits with none, the default, and a distance
// that is not a multiple of a cache line or block, for 1 and 3 activation rows.
TEST(LowpGemm, L2PrefetchDistanceDoesNotChangeResults) {
  if (!Cpu().avx512_full()) GTEST_SKIP() << "no blocked layouts on this CPU";
  const int64_t n = 200, k = 512;
  auto w = Random(n * k, 41, 0.05f), x = Random(3 * k, 42);
  Q8Matrix q8 = QuantizeQ8(w.data(), n, k);
  Q4Matrix q4 = QuantizeQ4(w.data(), n, k);
  ASSERT_TRUE(PackQ8(&q8));
  ASSERT_TRUE(PackQ4(&q4));
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
  const auto bf = PackBf16(wb.data(), n, k);
  ASSERT_NE(bf, nullptr);
  const int64_t saved = StreamL2AheadBytes();
  std::vector<std::vector<float>> first;
  for (int64_t l2 : {int64_t{0}, int64_t{24} << 10, int64_t{1000}}) {
    SetStreamL2AheadBytesForTesting(l2);
    std::vector<std::vector<float>> got;
    for (int64_t m : {1, 3}) {
      got.emplace_back(m * n);
      GemmQ8(x.data(), q8, nullptr, got.back().data(), m);
      got.emplace_back(m * n);
      GemmQ4(x.data(), q4, nullptr, got.back().data(), m);
      got.emplace_back(m * n);
      GemmBF16Packed(x.data(), *bf, nullptr, got.back().data(), m);
    }
    if (first.empty()) {
      first = got;
    } else {
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i], first[i]) << "l2=" << l2 << " case " << i;
    }
  }
  SetStreamL2AheadBytesForTesting(saved);
}

// Blocked bf16 weights with many activation rows: oneDNN's bf16 matmul (vdpbf16ps) or, on Intel
// without AMX, the weights widened to f32 per panel and an f32 matmul; both multiply activations
// rounded to bf16. Both against a double-precision product of the same bf16 values, with a bias,
// n and k not multiples of the blocks, and a matrix over one 32 MB panel (two panels, the second
// narrower).
TEST(LowpGemm, BlockedBf16ManyRowsBothRoutes) {
  if (!Cpu().avx512_full()) GTEST_SKIP() << "no blocked layouts on this CPU";
  const CpuFeatures saved = Cpu();
  struct Shape {
    int64_t m, n, k;
  };
  for (const Shape& sh : {Shape{37, 200, 80}, Shape{9, 4160, 2048}}) {
    auto w = Random(sh.n * sh.k, 51, 0.05f), x = Random(sh.m * sh.k, 52), bias = Random(sh.n, 53);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = F32ToBf16(w[i]);
    const auto packed = PackBf16(wb.data(), sh.n, sh.k);
    ASSERT_NE(packed, nullptr);
    std::vector<double> want(static_cast<size_t>(sh.m * sh.n));
    for (int64_t i = 0; i < sh.m; ++i)
      for (int64_t j = 0; j < sh.n; ++j) {
        double acc = bias[j];
        for (int64_t t = 0; t < sh.k; ++t)
          acc += static_cast<double>(Bf16ToF32(F32ToBf16(x[i * sh.k + t]))) *
                 Bf16ToF32(wb[j * sh.k + t]);
        want[i * sh.n + j] = acc;
      }
    for (bool via_f32 : {false, true}) {
      CpuFeatures f = saved;
      f.intel = via_f32;
      f.amx_bf16 = false;
      SetCpuFeaturesForTesting(f);
      std::vector<float> got(want.size(), -1.0f);
      GemmBF16Packed(x.data(), *packed, bias.data(), got.data(), sh.m);
      double err = 0, norm = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        err += (got[i] - want[i]) * (got[i] - want[i]);
        norm += want[i] * want[i];
      }
      // Exact products of bf16 values, f32 sums: float rounding only.
      EXPECT_LT(std::sqrt(err / norm), 1e-5)
          << "m=" << sh.m << " n=" << sh.n << " k=" << sh.k << " via_f32=" << via_f32;
    }
    SetCpuFeaturesForTesting(saved);
  }
}

// bf16 keys/values read in place (k16/v16: the bf16 KV cache, keys in its tiles) give what the
// float32 kernels give on the same bf16-rounded keys/values, for decode-sized query counts (the
// AVX-512 kernels as chosen on AMD and on Intel, and portable), with causal offsets, padding, a
// row with no visible key and hd not a multiple of 32.
TEST(FusedAttention, Bf16KeysValuesMatchFloat) {
  const CpuFeatures saved = Cpu();
  for (int path : {0, 1, 2}) {  // AVX-512 as on AMD, as on Intel, portable
    const bool native = path < 2;
    CpuFeatures f = native ? saved : CpuFeatures{};
    f.intel = path == 1;
    SetCpuFeaturesForTesting(f);
    for (int64_t hd : {64, 48}) {
      const int64_t nk = 70, stride = hd + 16;
      for (int64_t nq : {1, 4, 7}) {
        for (int64_t off : {int64_t{-1}, nk - nq, int64_t{0}}) {
          auto q = Random(nq * hd, 31), k = Random(nk * stride, 32), v = Random(nk * stride, 33);
          std::vector<uint16_t> k16(k.size()), v16(v.size());
          for (size_t i = 0; i < k.size(); ++i) {
            k16[i] = F32ToBf16(k[i]);
            v16[i] = F32ToBf16(v[i]);
            k[i] = Bf16ToF32(k16[i]);
            v[i] = Bf16ToF32(v16[i]);
          }
          std::vector<uint8_t> valid(nk, 1);
          valid[0] = valid[5] = 0;
          std::vector<float> want(nq * hd), got(nq * hd);
          AttentionArgs a;
          a.q = q.data();
          a.q_stride = hd;
          a.k = k.data();
          a.v = v.data();
          a.kv_stride = stride;
          a.out = want.data();
          a.out_stride = hd;
          a.nq = nq;
          a.nk = nk;
          a.hd = hd;
          a.scale = 0.125f;
          a.causal_offset = off;
          a.valid = valid.data();
          FusedAttention(a);
          a.k = a.v = nullptr;
          std::vector<uint16_t> k16_rows(static_cast<size_t>(nk * hd));
          for (int64_t j = 0; j < nk; ++j)
            std::copy_n(k16.data() + j * stride, hd, k16_rows.data() + j * hd);
          const std::vector<uint16_t> k16_tiles = ToKeyTiles(k16_rows.data(), nk, hd);
          a.k16 = k16_tiles.data();
          a.v16 = v16.data();
          a.out = got.data();
          for (bool bf16 : {false, true}) {
            // bf16 products round the queries to bf16 (AVX512-BF16, not on Intel): ~3 digits;
            // on Intel f32 products with the 4e-5 exp of the reduced-precision paths.
            a.bf16 = bf16;
            FusedAttention(a);
            const bool fast = bf16 && native && Cpu().avx512_full();
            EXPECT_LT(RelErr(got, want), !fast       ? 1e-5
                                         : path == 0 ? 1e-2
                                                     : 1e-4)
                << "path " << path << " hd=" << hd << " nq=" << nq << " off=" << off
                << " bf16=" << bf16;
          }
        }
      }
    }
  }
  SetCpuFeaturesForTesting(saved);
}

TEST(FusedAttention, MatchesNaive) {
  const int64_t hd = 64, nk = 150;
  for (int64_t nq : {1, 5, 150}) {
    for (int variant : {0, 1, 2}) {
      const bool use_kt = variant == 1;
      for (int64_t causal : {-1, 0}) {
        auto q = Random(nq * hd, 7), k = Random(nk * hd, 8), v = Random(nk * hd, 9);
        std::vector<uint8_t> valid(nk, 1);
        valid[3] = 0;
        const int64_t off = causal < 0 ? -1 : nk - nq;
        std::vector<float> kt(nk * hd), out(nq * hd), ref(nq * hd, 0.0f);
        TransposeKeys(k.data(), hd, nk, hd, kt.data());
        AttentionArgs a;
        a.q = q.data();
        a.q_stride = hd;
        a.k = k.data();
        a.v = v.data();
        a.kv_stride = hd;
        a.kt = use_kt ? kt.data() : nullptr;
        a.kt_stride = nk;
        a.out = out.data();
        a.out_stride = hd;
        a.nq = nq;
        a.nk = nk;
        a.hd = hd;
        a.scale = 0.125f;
        a.causal_offset = off;
        a.valid = valid.data();
        a.bf16 = variant == 2;
        FusedAttention(a);
        for (int64_t i = 0; i < nq; ++i) {
          std::vector<float> s(nk);
          const int64_t lim = off < 0 ? nk : off + i + 1;
          float mx = -1e30f;
          for (int64_t j = 0; j < lim; ++j) {
            if (!valid[j]) continue;
            float d = 0;
            for (int64_t t = 0; t < hd; ++t) d += q[i * hd + t] * k[j * hd + t];
            s[j] = d * 0.125f;
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (int64_t j = 0; j < lim; ++j)
            if (valid[j]) sum += std::exp(s[j] - mx);
          for (int64_t j = 0; j < lim; ++j) {
            if (!valid[j]) continue;
            const float p = static_cast<float>(std::exp(s[j] - mx) / sum);
            for (int64_t t = 0; t < hd; ++t) ref[i * hd + t] += p * v[j * hd + t];
          }
        }
        EXPECT_LT(RelErr(out, ref), variant == 2 ? 2e-2 : 1e-5)
            << nq << " " << variant << " " << causal;
      }
    }
  }
}

// GELU, SiLU and exp of the fast paths against the exact functions.
void CheckFastMath() {
  std::vector<float> x(2001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -10.0f + 0.01f * static_cast<float>(i);
  std::vector<float> g = x, s = x, e = x, gr = x, sr = x;
  GeluFastInPlace(g.data(), static_cast<int64_t>(g.size()));
  SiluFastInPlace(s.data(), static_cast<int64_t>(s.size()));
  ExpInPlace(e.data(), static_cast<int64_t>(e.size()));
  GeluErfInPlace(gr.data(), static_cast<int64_t>(gr.size()));
  SiluInPlace(sr.data(), static_cast<int64_t>(sr.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(g[i], gr[i], 1e-6f * std::max(1.0f, std::fabs(x[i])));
    EXPECT_NEAR(s[i], sr[i], 1e-6f * std::max(1.0f, std::fabs(x[i])));
    EXPECT_NEAR(e[i], std::exp(x[i]), 4e-7f * std::exp(x[i]));
  }
  // Out of the approximation's range: inf stays inf (the reference's x * Phi(x)), huge values
  // keep x or 0, NaN stays NaN.
  std::vector<float> edge = {std::numeric_limits<float>::infinity(), 1e30f, -1e30f, 40.0f,
                             std::numeric_limits<float>::quiet_NaN()};
  GeluFastInPlace(edge.data(), static_cast<int64_t>(edge.size()));
  EXPECT_EQ(edge[0], std::numeric_limits<float>::infinity());
  EXPECT_EQ(edge[1], 1e30f);
  EXPECT_EQ(edge[2], 0.0f);
  EXPECT_EQ(edge[3], 40.0f);
  EXPECT_TRUE(std::isnan(edge[4]));
}

// GeluFastInPlace: the AVX-512 kernel where the CPU has it, and the portable loop (forced).
TEST(FastMath, GeluAndSiluAndExp) {
  const CpuFeatures saved = Cpu();
  for (bool avx512 : {true, false}) {
    if (avx512 && !saved.avx512f) continue;
    CpuFeatures f = saved;
    f.avx512f = avx512;
    SetCpuFeaturesForTesting(f);
    SCOPED_TRACE(avx512 ? "AVX-512" : "portable");
    CheckFastMath();
  }
  SetCpuFeaturesForTesting(saved);
}

// The fused SiLU·up of the Llama MLP equals SiLU then the product, on the serial and the
// thread-split sizes.
TEST(FastMath, SiluMulEqualsSiluThenProduct) {
  for (int64_t n : {1000, 300000}) {
    auto g = Random(static_cast<size_t>(n), 61, 3.0f), u = Random(static_cast<size_t>(n), 62);
    std::vector<float> want = g, got = g;
    SiluFastInPlace(want.data(), n);
    for (int64_t i = 0; i < n; ++i) want[i] *= u[i];
    ParallelSiluMulFast(got.data(), u.data(), n);
    EXPECT_EQ(got, want) << n;
  }
}

}  // namespace
}  // namespace plm
