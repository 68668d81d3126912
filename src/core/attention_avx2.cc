#include "core/attention_avx2.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/exp_approx.h"
#include "core/key_tiles.h"
#include "core/simd_avx2.h"

namespace plm {

namespace {

constexpr int64_t kRows = 4;  // query rows per pass (the 4 query heads of a 1B KV head)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// s[i * ld + j] (unscaled) for query rows q0 + i (i < kRows; rows past qb repeat the last) and
// keys [0, lim) rounded up to whole tiles: per tile, 16 keys at a time, a 32-byte load per 8 keys
// and dimension pair gives their two values, widened by a shift (even dimension) and a mask (odd
// one), each multiplied by the query values broadcast.
__attribute__((target(PLM_AVX2))) void ScoresAvx2(const AttentionArgs& a, int64_t q0, int64_t qb,
                                                  int64_t lim, float* s, int64_t ld) {
  const int64_t hd = a.hd, np = hd / 2, tile_elems = kKeyTile * hd;
  alignas(32) float qf[kRows][256];
  for (int64_t i = 0; i < kRows; ++i)
    std::memcpy(qf[i], a.q + (q0 + std::min(i, qb - 1)) * a.q_stride, hd * sizeof(float));
  const int64_t tiles = (lim + kKeyTile - 1) / kKeyTile;
  const int64_t pf_tiles = (std::max(lim, a.nk_prefetch) + kKeyTile - 1) / kKeyTile;
  const __m256i odd = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  for (int64_t t = 0; t < tiles; ++t) {
    const uint16_t* tile = a.k16 + t * tile_elems;
    // Two groups of 8 keys (one 64-byte line per dimension pair) per pass: each broadcast query
    // value serves 2 FMAs, the even and odd products summed in one accumulator per row and group.
    for (int64_t gp = 0; gp < kKeyTile / 16; ++gp) {
      __m256 acc[2][kRows];
      for (int64_t i = 0; i < kRows; ++i) acc[0][i] = acc[1][i] = _mm256_setzero_ps();
      for (int64_t c = 0; c < np; ++c) {
        if (gp == 0 && t + 2 < pf_tiles) {  // the tile after next, its two lines of this pair
          const char* f = reinterpret_cast<const char*>(tile + 2 * tile_elems + c * 2 * kKeyTile);
          _mm_prefetch(f, _MM_HINT_T0);
          _mm_prefetch(f + 64, _MM_HINT_T0);
        }
        const uint16_t* line = tile + c * 2 * kKeyTile + gp * 32;
        const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line));
        const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 16));
        const __m256 ke0 = _mm256_castsi256_ps(_mm256_slli_epi32(k0, 16));
        const __m256 ko0 = _mm256_castsi256_ps(_mm256_and_si256(k0, odd));
        const __m256 ke1 = _mm256_castsi256_ps(_mm256_slli_epi32(k1, 16));
        const __m256 ko1 = _mm256_castsi256_ps(_mm256_and_si256(k1, odd));
        for (int64_t i = 0; i < kRows; ++i) {
          const __m256 qe = _mm256_broadcast_ss(&qf[i][2 * c]);
          const __m256 qo = _mm256_broadcast_ss(&qf[i][2 * c + 1]);
          acc[0][i] = _mm256_fmadd_ps(qo, ko0, _mm256_fmadd_ps(qe, ke0, acc[0][i]));
          acc[1][i] = _mm256_fmadd_ps(qo, ko1, _mm256_fmadd_ps(qe, ke1, acc[1][i]));
        }
      }
      // Every row, also those past qb (s has kRows rows): a store loop bounded by qb would keep
      // the accumulators in memory instead of registers (GCC), at ~3x the time.
      for (int64_t i = 0; i < kRows; ++i) {
        _mm256_storeu_ps(s + i * ld + t * kKeyTile + gp * 16, acc[0][i]);
        _mm256_storeu_ps(s + i * ld + t * kKeyTile + gp * 16 + 8, acc[1][i]);
      }
    }
  }
}

// Row si of scores for query qi → unnormalised probabilities exp(x - max) in place (scaled,
// masked by `valid` and the causal limit); *inv_sum = 1 / their sum, *lse (when set) the
// log-sum-exp. Returns how many leading entries hold probabilities (the rest of the row up to
// the next multiple of 8 is 0). A row with no visible key attends uniformly to all nk keys.
__attribute__((target(PLM_AVX2))) int64_t SoftmaxRowAvx2(const AttentionArgs& a, float* si,
                                                         int64_t qi, float* inv_sum, float* lse) {
  const int64_t nk = a.nk;
  const int64_t rl = a.causal_offset >= 0 ? std::min(nk, a.causal_offset + qi + 1) : nk;
  const __m256 scale = _mm256_set1_ps(a.scale), neg_inf = _mm256_set1_ps(kNegInf);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 vmax = neg_inf;
  for (int64_t j = 0; j < rl; j += 8) {
    // Lanes past rl, and keys marked invalid, are -inf.
    __m256 keep = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(rl - j)), lane));
    if (a.valid != nullptr) {
      uint8_t v8[8] = {};
      std::memcpy(v8, a.valid + j, static_cast<size_t>(std::min<int64_t>(8, nk - j)));
      int64_t bytes;
      std::memcpy(&bytes, v8, 8);
      const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
      keep = _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, _mm256_setzero_si256())),
                              keep);
    }
    const __m256 x = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(_mm256_loadu_ps(si + j), scale), keep);
    _mm256_storeu_ps(si + j, x);
    vmax = _mm256_max_ps(vmax, x);
  }
  const float mx = HMax(vmax);
  if (mx == kNegInf) {
    std::fill_n(si, nk, 1.0f / static_cast<float>(nk));
    *inv_sum = 1.0f;
    if (lse != nullptr) *lse = kNegInf;
    return nk;
  }
  const __m256 mv = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t j = 0; j < rl; j += 8) {
    const __m256 x = _mm256_loadu_ps(si + j);
    // exp(-inf - mx) must be 0 (Exp256 clamps to ~1e-38): masked keys stay out.
    const __m256 p =
        _mm256_and_ps(Exp256(_mm256_sub_ps(x, mv)), _mm256_cmp_ps(x, neg_inf, _CMP_NEQ_OQ));
    _mm256_storeu_ps(si + j, p);
    vsum = _mm256_add_ps(vsum, p);
  }
  const float sum = HSum(vsum);
  *inv_sum = 1.0f / sum;
  if (lse != nullptr) *lse = mx + std::log(sum);
  return rl;
}

// out[i * out_stride + d] = inv[i] * sum_j p[i * ld + j] v[j, d] for R rows, keys [0, keys):
// blocks of keys whose values fit L1 pass 16 dimensions at a time (2 R accumulators, in
// registers with R known at compile time), the running sums kept in acc [R][hd] between blocks.
// Each 32-byte load of 16 values is widened as its even and odd dimensions (a shift, a mask:
// half the widening instructions of vpmovzxwd + shift per 8 values), so acc holds per 16
// dimensions the 8 even ones then the 8 odd ones, interleaved once at the end.
template <int R>
__attribute__((target(PLM_AVX2))) void ProbsTimesValuesAvx2(const float* p, int64_t ld,
                                                            int64_t keys, const AttentionArgs& a,
                                                            const float* inv, float* acc,
                                                            float* out) {
  const int64_t hd = a.hd, stride = a.kv_stride;
  const int64_t block = std::max<int64_t>(16, 16384 / (hd * 2));
  const int64_t pf_keys = std::max(keys, a.nk_prefetch);
  const __m256i odd = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  std::fill_n(acc, R * hd, 0.0f);
  for (int64_t j0 = 0; j0 < keys; j0 += block) {
    const int64_t j1 = std::min(keys, j0 + block);
    for (int64_t d = 0; d < hd; d += 16) {
      __m256 o[R][2];
      for (int i = 0; i < R; ++i) {
        o[i][0] = _mm256_loadu_ps(acc + i * hd + d);
        o[i][1] = _mm256_loadu_ps(acc + i * hd + d + 8);
      }
      for (int64_t j = j0; j < j1; ++j) {
        const uint16_t* vj = a.v16 + j * stride + d;
        if (d == 0 && j + block < pf_keys)  // the next block's rows, while this one is read
          for (int64_t b = 0; b < hd * 2; b += 64)
            _mm_prefetch(reinterpret_cast<const char*>(a.v16 + (j + block) * stride) + b,
                         _MM_HINT_T0);
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vj));
        const __m256 ve = _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));
        const __m256 vo = _mm256_castsi256_ps(_mm256_and_si256(raw, odd));
        for (int i = 0; i < R; ++i) {
          const __m256 pj = _mm256_broadcast_ss(p + i * ld + j);
          o[i][0] = _mm256_fmadd_ps(pj, ve, o[i][0]);
          o[i][1] = _mm256_fmadd_ps(pj, vo, o[i][1]);
        }
      }
      for (int i = 0; i < R; ++i) {
        _mm256_storeu_ps(acc + i * hd + d, o[i][0]);
        _mm256_storeu_ps(acc + i * hd + d + 8, o[i][1]);
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    const __m256 sc = _mm256_set1_ps(inv[i]);
    for (int64_t d = 0; d < hd; d += 16) {
      const __m256 e = _mm256_loadu_ps(acc + i * hd + d),
                   od = _mm256_loadu_ps(acc + i * hd + d + 8);
      const __m256 lo = _mm256_unpacklo_ps(e, od), hi = _mm256_unpackhi_ps(e, od);
      float* oi = out + i * a.out_stride + d;
      _mm256_storeu_ps(oi, _mm256_mul_ps(_mm256_permute2f128_ps(lo, hi, 0x20), sc));
      _mm256_storeu_ps(oi + 8, _mm256_mul_ps(_mm256_permute2f128_ps(lo, hi, 0x31), sc));
    }
  }
}

}  // namespace

__attribute__((target(PLM_AVX2))) void FusedAttentionKV16Avx2(const AttentionArgs& a) {
  const int64_t hd = a.hd, nk = a.nk;
  const int64_t ld = KeyTilePositions(nk);  // whole tiles
  thread_local std::vector<float> sbuf, abuf;
  if (sbuf.size() < static_cast<size_t>(kRows * ld)) sbuf.resize(kRows * ld);
  if (abuf.size() < static_cast<size_t>(kRows * hd)) abuf.resize(kRows * hd);
  float* s = sbuf.data();
  for (int64_t q0 = 0; q0 < a.nq; q0 += kRows) {
    const int64_t qb = std::min(kRows, a.nq - q0);
    int64_t lim = nk;
    if (a.causal_offset >= 0) lim = std::min(nk, a.causal_offset + q0 + qb);
    ScoresAvx2(a, q0, qb, lim, s, ld);
    int64_t row_lim[kRows], block_lim = 0;
    float inv[kRows];
    for (int64_t i = 0; i < qb; ++i) {
      float* lse = a.lse != nullptr ? a.lse + q0 + i : nullptr;
      row_lim[i] = SoftmaxRowAvx2(a, s + i * ld, q0 + i, inv + i, lse);
      block_lim = std::max(block_lim, row_lim[i]);
    }
    for (int64_t i = 0; i < qb; ++i)
      for (int64_t j = row_lim[i]; j < block_lim; ++j) s[i * ld + j] = 0.0f;
    float* out = a.out + q0 * a.out_stride;
    switch (qb) {
      case 1:
        ProbsTimesValuesAvx2<1>(s, ld, block_lim, a, inv, abuf.data(), out);
        break;
      case 2:
        ProbsTimesValuesAvx2<2>(s, ld, block_lim, a, inv, abuf.data(), out);
        break;
      case 3:
        ProbsTimesValuesAvx2<3>(s, ld, block_lim, a, inv, abuf.data(), out);
        break;
      default:
        ProbsTimesValuesAvx2<4>(s, ld, block_lim, a, inv, abuf.data(), out);
        break;
    }
  }
}

}  // namespace plm
