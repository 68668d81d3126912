#include "core/flash_avx2.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu_features.h"
#include "core/scratch.h"
#include "core/simd_avx2.h"

namespace plm {

namespace {

constexpr int64_t kQB = 4;    // query rows per pass: 4 x 2 score vectors, 4 x 2 output vectors
constexpr int64_t kKB = 256;  // keys per block (the online softmax's step)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Scores of keys a row may not see: finite, so kHidden * scale - m stays finite; their
// probabilities are zeroed with the too-small ones (below).
constexpr float kHidden = -1e30f;
// exp(x) below this is zeroed: at most e^-80 of the row's largest term (which is 1), far below
// its rounding, and the clamped Exp256 (~1e-38) times a value would be subnormal (slow).
constexpr float kExpFloor = -80.0f;

// s[i * kKB + j] (unscaled) for the kQB query rows q (rows of hd) and `tiles` 8-key tiles of kt
// ([hd][8] each): two tiles per pass, each broadcast query value used for 16 keys.
__attribute__((target(PLM_AVX2))) void Scores(const float* q, int64_t hd, const float* kt,
                                              int64_t tiles, float* s) {
  int64_t t = 0;
  for (; t + 2 <= tiles; t += 2) {
    const float* k0 = kt + t * 8 * hd;
    const float* k1 = k0 + 8 * hd;
    __m256 acc[kQB][2];
#pragma GCC unroll 4
    for (int64_t i = 0; i < kQB; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 a = _mm256_loadu_ps(k0 + d * 8), b = _mm256_loadu_ps(k1 + d * 8);
#pragma GCC unroll 4
      for (int64_t i = 0; i < kQB; ++i) {
        const __m256 qv = _mm256_broadcast_ss(q + i * hd + d);
        acc[i][0] = _mm256_fmadd_ps(qv, a, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(qv, b, acc[i][1]);
      }
    }
#pragma GCC unroll 4
    for (int64_t i = 0; i < kQB; ++i) {
      _mm256_storeu_ps(s + i * kKB + t * 8, acc[i][0]);
      _mm256_storeu_ps(s + i * kKB + t * 8 + 8, acc[i][1]);
    }
  }
  if (t < tiles) {
    const float* k0 = kt + t * 8 * hd;
    __m256 acc[kQB];
#pragma GCC unroll 4
    for (int64_t i = 0; i < kQB; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 a = _mm256_loadu_ps(k0 + d * 8);
#pragma GCC unroll 4
      for (int64_t i = 0; i < kQB; ++i)
        acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + i * hd + d), a, acc[i]);
    }
#pragma GCC unroll 4
    for (int64_t i = 0; i < kQB; ++i) _mm256_storeu_ps(s + i * kKB + t * 8, acc[i]);
  }
}

// o[i] = alpha[i] * o[i] + sum_j p[i * kKB + j] v[j] for the kQB rows, keys j < keys (v rows of
// hd), 16 dimensions per pass (8 accumulators, each value load serving 4 rows).
__attribute__((target(PLM_AVX2))) void ProbsTimesValues(const float* p, const float* v,
                                                        int64_t keys, int64_t hd,
                                                        const float* alpha, float* o) {
  for (int64_t d0 = 0; d0 < hd; d0 += 16) {
    __m256 acc[kQB][2];
#pragma GCC unroll 4
    for (int64_t i = 0; i < kQB; ++i) {
      const __m256 al = _mm256_set1_ps(alpha[i]);
      acc[i][0] = _mm256_mul_ps(al, _mm256_loadu_ps(o + i * hd + d0));
      acc[i][1] = _mm256_mul_ps(al, _mm256_loadu_ps(o + i * hd + d0 + 8));
    }
    for (int64_t j = 0; j < keys; ++j) {
      const __m256 v0 = _mm256_loadu_ps(v + j * hd + d0), v1 = _mm256_loadu_ps(v + j * hd + d0 + 8);
#pragma GCC unroll 4
      for (int64_t i = 0; i < kQB; ++i) {
        const __m256 pv = _mm256_broadcast_ss(p + i * kKB + j);
        acc[i][0] = _mm256_fmadd_ps(pv, v0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(pv, v1, acc[i][1]);
      }
    }
#pragma GCC unroll 4
    for (int64_t i = 0; i < kQB; ++i) {
      _mm256_storeu_ps(o + i * hd + d0, acc[i][0]);
      _mm256_storeu_ps(o + i * hd + d0 + 8, acc[i][1]);
    }
  }
}

}  // namespace

bool UsesAvx2ManyQueryKernel(const AttentionArgs& a) {
  return a.bf16 && a.k16 == nullptr && a.lse == nullptr && a.nq >= kQB && a.hd % 16 == 0 &&
         a.hd <= 256 && Cpu().avx2_kernels();
}

__attribute__((target(PLM_AVX2))) void FusedAttentionFlashAvx2(const AttentionArgs& a) {
  const int64_t hd = a.hd, nk = a.nk, H = std::max<int64_t>(1, a.heads);
  const int64_t ks = a.k_stride > 0 ? a.k_stride : a.kv_stride;
  const int64_t ldk = (nk + 7) / 8 * 8;
  thread_local std::vector<float> kp, vp, qbuf, obuf, sbuf, pbuf;
  // Keys as 8-key tiles [hd][8] (past the last key: zero), values as rows.
  float* kt = GrowScratch(kp, static_cast<size_t>(ldk * hd));
  float* vr = GrowScratch(vp, static_cast<size_t>(nk * hd));
  std::fill(kt + nk / 8 * 8 * hd, kt + ldk * hd, 0.0f);
  for (int64_t j = 0; j < nk; ++j) {
    const float* kj = a.k + j * ks;
    float* dst = kt + (j / 8) * 8 * hd + j % 8;
    for (int64_t d = 0; d < hd; ++d) dst[d * 8] = kj[d];
    std::memcpy(vr + j * hd, a.v + j * a.kv_stride, sizeof(float) * hd);
  }
  float* q = GrowScratch(qbuf, static_cast<size_t>(H * kQB * hd));
  float* o = GrowScratch(obuf, static_cast<size_t>(H * kQB * hd));
  float* s = GrowScratch(sbuf, static_cast<size_t>(kQB * kKB));
  float* p = GrowScratch(pbuf, static_cast<size_t>(kQB * kKB));
  std::vector<float> m(static_cast<size_t>(H * kQB)), l(m.size());
  const __m256 scale = _mm256_set1_ps(a.scale), hidden = _mm256_set1_ps(kHidden),
               floor = _mm256_set1_ps(kExpFloor);
  for (int64_t q0 = 0; q0 < a.nq; q0 += kQB) {
    const int64_t qb = std::min(kQB, a.nq - q0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < kQB; ++i)  // rows past qb repeat the last (results unused)
        std::memcpy(q + (h * kQB + i) * hd,
                    a.q + h * a.q_head_stride + (q0 + std::min(i, qb - 1)) * a.q_stride,
                    sizeof(float) * hd);
    std::fill(o, o + H * kQB * hd, 0.0f);
    std::fill(m.begin(), m.end(), kNegInf);
    std::fill(l.begin(), l.end(), 0.0f);
    // Keys row i of the block may see, and the most any row sees.
    auto row_keys = [&](int64_t i) {
      return a.causal_offset >= 0 ? std::min(nk, a.causal_offset + q0 + i + 1) : nk;
    };
    const int64_t lim = row_keys(qb - 1);
    for (int64_t kb0 = 0; kb0 < lim; kb0 += kKB) {
      const int64_t kn = std::min(kKB, lim - kb0), tiles = (kn + 7) / 8, padded = tiles * 8;
      // Every row sees every key of the block (and no tile runs past the last key)?
      const bool full = a.valid == nullptr && row_keys(0) >= kb0 + kn && kn == padded;
      for (int64_t h = 0; h < H; ++h) {
        Scores(q + h * kQB * hd, hd, kt + kb0 * hd, tiles, s);
        if (!full)
          for (int64_t i = 0; i < kQB; ++i) {
            const int64_t see = row_keys(std::min(i, qb - 1)) - kb0;
            for (int64_t j = 0; j < padded; ++j)
              if (j >= see || j >= kn || (a.valid != nullptr && a.valid[kb0 + j] == 0))
                s[i * kKB + j] = kHidden;
          }
        alignas(32) float alpha[kQB];
        float* mh = m.data() + h * kQB;
        float* lh = l.data() + h * kQB;
        for (int64_t i = 0; i < kQB; ++i) {
          const float* si = s + i * kKB;
          float* pi = p + i * kKB;
          __m256 vmax = hidden;
          for (int64_t j = 0; j < padded; j += 8)
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(si + j));
          const float bm = HMax(vmax);
          if (bm <= kHidden) {  // nothing visible to this row here: output unchanged
            alpha[i] = 1.0f;
            std::fill(pi, pi + padded, 0.0f);
            continue;
          }
          const float mnew = std::max(mh[i], bm * a.scale);
          alpha[i] = mh[i] == kNegInf ? 0.0f : std::exp(mh[i] - mnew);
          const __m256 mv = _mm256_set1_ps(mnew);
          __m256 vsum = _mm256_setzero_ps();
          for (int64_t j = 0; j < padded; j += 8) {
            const __m256 x = _mm256_fmsub_ps(_mm256_loadu_ps(si + j), scale, mv);
            const __m256 e = _mm256_and_ps(Exp256(x), _mm256_cmp_ps(x, floor, _CMP_GT_OQ));
            _mm256_storeu_ps(pi + j, e);
            vsum = _mm256_add_ps(vsum, e);
          }
          lh[i] = lh[i] * alpha[i] + HSum(vsum);
          mh[i] = mnew;
        }
        ProbsTimesValues(p, vr + kb0 * hd, kn, hd, alpha, o + h * kQB * hd);
      }
    }
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < qb; ++i) {
        float* out = a.out + h * a.out_head_stride + (q0 + i) * a.out_stride;
        const float* oi = o + (h * kQB + i) * hd;
        if (m[h * kQB + i] == kNegInf) {
          // No visible key: uniform over all nk keys (the reference's finfo.min masking).
          for (int64_t d = 0; d < hd; ++d) {
            float acc = 0.0f;
            for (int64_t j = 0; j < nk; ++j) acc += vr[j * hd + d];
            out[d] = acc / static_cast<float>(nk);
          }
          continue;
        }
        const float inv = 1.0f / l[h * kQB + i];
        for (int64_t d = 0; d < hd; ++d) out[d] = oi[d] * inv;
      }
  }
}

}  // namespace plm
