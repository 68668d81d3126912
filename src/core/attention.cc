#include "core/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"

namespace plm {

namespace {

// Cephes-style expf: range reduction by ln2 and a degree-6 polynomial, branch-free.
inline float ExpApprox(float x) {
  x = std::clamp(x, -87.3f, 88.7f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, 4);
  return p * scale;
}

constexpr int64_t kQBlock = 4;

}  // namespace

__attribute__((target_clones("avx512f", "default"))) void ExpInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = ExpApprox(x[i]);
}

__attribute__((target_clones("avx512f", "default"))) void GeluFastInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    // Abramowitz & Stegun 7.1.26 on |z|, z = x / sqrt(2).
    const float v = x[i];
    const float z = std::fabs(v) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.3275911f * z);
    const float poly =
        t * (0.254829592f +
             t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float erf_abs = 1.0f - poly * ExpApprox(-z * z);
    const float erf = v < 0 ? -erf_abs : erf_abs;
    x[i] = 0.5f * v * (1.0f + erf);
  }
}

__attribute__((target_clones("avx512f", "default"))) void SiluFastInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + ExpApprox(-x[i]));
}

void ParallelGeluFast(float* x, int64_t n) {
  ThreadPool::Global().ParallelFor((n + 4095) / 4096, [&](int64_t b, int64_t e) {
    GeluFastInPlace(x + b * 4096, std::min(n, e * 4096) - b * 4096);
  });
}

void ParallelSiluFast(float* x, int64_t n) {
  ThreadPool::Global().ParallelFor((n + 4095) / 4096, [&](int64_t b, int64_t e) {
    SiluFastInPlace(x + b * 4096, std::min(n, e * 4096) - b * 4096);
  });
}

__attribute__((target_clones("avx512f", "default"))) void TransposeKeys(const float* k,
                                                                        int64_t stride, int64_t nk,
                                                                        int64_t hd, float* kt) {
  constexpr int64_t kTile = 16;
  for (int64_t j0 = 0; j0 < nk; j0 += kTile) {
    const int64_t j1 = std::min(nk, j0 + kTile);
    for (int64_t d = 0; d < hd; ++d)
      for (int64_t j = j0; j < j1; ++j) kt[d * nk + j] = k[j * stride + d];
  }
}

__attribute__((target_clones("avx512f", "default"))) void FusedAttention(const AttentionArgs& a) {
  const int64_t hd = a.hd, nk = a.nk;
  thread_local std::vector<float> sbuf;
  thread_local std::vector<float> obuf;
  if (sbuf.size() < static_cast<size_t>(kQBlock * nk)) sbuf.resize(kQBlock * nk);
  if (obuf.size() < static_cast<size_t>(kQBlock * hd)) obuf.resize(kQBlock * hd);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t q0 = 0; q0 < a.nq; q0 += kQBlock) {
    const int64_t qb = std::min(kQBlock, a.nq - q0);
    // Keys any row of the block may see.
    int64_t lim = nk;
    if (a.causal_offset >= 0) lim = std::min(nk, a.causal_offset + q0 + qb);
    float* s = sbuf.data();
    // Scores.
    if (a.kt != nullptr) {
      constexpr int64_t kJ = 256;
      for (int64_t j0 = 0; j0 < lim; j0 += kJ) {
        const int64_t jn = std::min(kJ, lim - j0);
        for (int64_t i = 0; i < qb; ++i) {
          float* si = s + i * nk + j0;
          for (int64_t j = 0; j < jn; ++j) si[j] = 0.0f;
          const float* qi = a.q + (q0 + i) * a.q_stride;
          for (int64_t d = 0; d < hd; ++d) {
            const float qd = qi[d];
            const float* kr = a.kt + d * a.kt_stride + j0;
            for (int64_t j = 0; j < jn; ++j) si[j] += qd * kr[j];
          }
        }
      }
    } else {
      for (int64_t i = 0; i < qb; ++i) {
        const float* qi = a.q + (q0 + i) * a.q_stride;
        for (int64_t j = 0; j < lim; ++j) {
          const float* kj = a.k + j * a.kv_stride;
          float acc = 0.0f;
          for (int64_t d = 0; d < hd; ++d) acc += qi[d] * kj[d];
          s[i * nk + j] = acc;
        }
      }
    }
    // Softmax per row with masking.
    for (int64_t i = 0; i < qb; ++i) {
      float* si = s + i * nk;
      const int64_t rl = a.causal_offset >= 0 ? std::min(nk, a.causal_offset + q0 + i + 1) : nk;
      float mx = kNegInf;
      for (int64_t j = 0; j < rl; ++j) {
        const bool ok = a.valid == nullptr || a.valid[j] != 0;
        si[j] = ok ? si[j] * a.scale : kNegInf;
        mx = std::max(mx, si[j]);
      }
      float* o = obuf.data() + i * hd;
      for (int64_t d = 0; d < hd; ++d) o[d] = 0.0f;
      if (mx == kNegInf) {
        // No visible key: uniform over all keys (reference behaviour with finfo.min masking).
        const float p = 1.0f / static_cast<float>(nk);
        for (int64_t j = 0; j < nk; ++j) {
          const float* vj = a.v + j * a.kv_stride;
          for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
        }
        si[0] = 0;  // marks the row as done
        continue;
      }
      for (int64_t j = 0; j < rl; ++j) si[j] = si[j] - mx;
      float sum = 0.0f;
      for (int64_t j = 0; j < rl; ++j) {
        si[j] = ExpApprox(si[j]);
        sum += si[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < rl; ++j) si[j] *= inv;
      for (int64_t j = 0; j < rl; ++j) {
        const float p = si[j];
        const float* vj = a.v + j * a.kv_stride;
        for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
      }
    }
    for (int64_t i = 0; i < qb; ++i)
      std::copy_n(obuf.data() + i * hd, hd, a.out + (q0 + i) * a.out_stride);
  }
}

}  // namespace plm
