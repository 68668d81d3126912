#include "core/flash_fp16.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/simd.h"

#define PLM_FP16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512fp16,fma")))

namespace plm::fp16 {

namespace {

constexpr int64_t kRows = 8;    // query rows per call (the flash kernel's block)
constexpr int64_t kChunk = 32;  // products summed in fp16 before they join the f32 sums

PLM_FP16_TARGET inline __m512 LowHalf(__m512h h) {
  return _mm512_cvtxph_ps(_mm512_castph512_ph256(h));
}
PLM_FP16_TARGET inline __m512 HighHalf(__m512h h) {
  return _mm512_cvtxph_ps(
      _mm256_castsi256_ph(_mm512_extracti64x4_epi64(_mm512_castph_si512(h), 1)));
}

PLM_FP16_TARGET inline __m512h Broadcast(const uint32_t* pair) {
  return _mm512_castsi512_ph(_mm512_set1_epi32(static_cast<int>(*pair)));
}

PLM_FP16_TARGET inline __m512 Bf16x16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// Exponent e with m * 2^e in [2^(top-1), 2^top) (0 for m == 0), kept where 2^e is a normal f32.
int ExponentBelow(float m, int top) {
  if (m == 0.0f) return 0;
  int x = 0;
  std::frexp(m, &x);  // m = f * 2^x, f in [0.5, 1)
  return std::clamp(top - x, -120, 120);
}

}  // namespace

namespace {

PLM_FP16_TARGET inline __m512 Load16(const float* p) {
  return _mm512_loadu_ps(p);
}
PLM_FP16_TARGET inline __m512 Load16(const uint16_t* p) {
  return Bf16x16(p);
}
inline float Scalar(float x) {
  return x;
}
inline float Scalar(uint16_t x) {
  return Bf16ToF32(x);
}

template <typename T>
PLM_FP16_TARGET float MaxAbsRows(const T* x, int64_t rows, int64_t n, int64_t stride) {
  __m512 m = _mm512_setzero_ps();
  bool nan = false;
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * stride;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 v = Load16(row + i);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) != 0;
      m = _mm512_max_ps(m, _mm512_abs_ps(v));
    }
    for (; i < n; ++i) {
      const float f = Scalar(row[i]);
      nan |= std::isnan(f);
      m = _mm512_max_ps(m, _mm512_set1_ps(std::fabs(f)));
    }
  }
  return nan ? std::nanf("") : _mm512_reduce_max_ps(m);
}

}  // namespace

float MaxAbsF32(const float* x, int64_t rows, int64_t n, int64_t stride) {
  return MaxAbsRows(x, rows, n, stride);
}

float MaxAbsBf16Rows(const uint16_t* x, int64_t rows, int64_t n, int64_t stride) {
  return MaxAbsRows(x, rows, n, stride);
}

float MaxAbsBf16(const uint16_t* x, int64_t count) {
  return MaxAbsBf16Rows(x, 1, count, count);
}

Exponents ChooseExponents(float max_q, float max_k, float max_v) {
  Exponents e;
  e.ok = std::isfinite(max_q) && std::isfinite(max_k) && std::isfinite(max_v);
  if (!e.ok) return e;
  e.q = ExponentBelow(max_q, 6);  // < 64
  e.k = ExponentBelow(max_k, 3);  // < 8: 32 * 64 * 8 = 16384, two such sums < 32768 < 65504
  e.v = ExponentBelow(max_v, 9);  // < 512: 32 * 1 * 512 = 16384, likewise
  return e;
}

PLM_FP16_TARGET void ToF16Scaled(const float* x, int64_t n, float scale, uint16_t* out) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(out + i),
        _mm256_castph_si256(_mm512_cvtxps_ph(_mm512_mul_ps(_mm512_loadu_ps(x + i), s))));
  for (; i < n; ++i) {
    const _Float16 h = static_cast<_Float16>(x[i] * scale);
    std::memcpy(out + i, &h, 2);
  }
}

PLM_FP16_TARGET void ToF16PairsScaled(const float* x, int64_t n, float scale, uint32_t* out) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_si512(
        out + i,
        Pairs(_mm256_castph_si256(_mm512_cvtxps_ph(_mm512_mul_ps(_mm512_loadu_ps(x + i), s)))));
  for (; i < n; ++i) {
    const _Float16 h = static_cast<_Float16>(x[i] * scale);
    uint16_t b;
    std::memcpy(&b, &h, 2);
    out[i] = b | (static_cast<uint32_t>(b) << 16);
  }
}

PLM_FP16_TARGET void Bf16ToF16Scaled(const uint16_t* x, int64_t n, float scale, uint16_t* out) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_castph_si256(_mm512_cvtxps_ph(_mm512_mul_ps(Bf16x16(x + i), s))));
  for (; i < n; ++i) {
    const _Float16 h = static_cast<_Float16>(Bf16ToF32(x[i]) * scale);
    std::memcpy(out + i, &h, 2);
  }
}

PLM_FP16_TARGET void PackKeyTiles(const float* k, int64_t nk, int64_t hd, int64_t stride,
                                  float scale, uint16_t* out) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i rows =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(static_cast<int32_t>(stride)));
  for (int64_t t0 = 0; t0 < nk; t0 += 32) {
    const int64_t keys = std::min<int64_t>(32, nk - t0);
    const auto m0 = static_cast<__mmask16>(keys >= 16 ? 0xffff : (1u << keys) - 1u);
    const auto m1 = static_cast<__mmask16>(keys >= 32   ? 0xffff
                                           : keys <= 16 ? 0
                                                        : (1u << (keys - 16)) - 1u);
    const float* k0 = k + t0 * stride;
    const float* k1 = keys > 16 ? k0 + 16 * stride : k0;  // (unread when there is no second half)
    uint16_t* tile = out + t0 * hd;
    for (int64_t d = 0; d < hd; ++d) {
      const __m512 a = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, rows, k0 + d, 4);
      const __m512 b = m1 == 0 ? _mm512_setzero_ps()
                               : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, rows, k1 + d, 4);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + d * 32),
                          _mm256_castph_si256(_mm512_cvtxps_ph(_mm512_mul_ps(a, s))));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + d * 32 + 16),
                          _mm256_castph_si256(_mm512_cvtxps_ph(_mm512_mul_ps(b, s))));
    }
  }
}

namespace {

// Scores of 8 rows against NT (1 or 2) tiles of 32 keys (tile stride 32 * hd): per dimension
// one load per tile and one broadcast query value per row give 8 * NT FMAs (with one tile, the
// nine loads per eight FMAs would bind).
template <int NT>
PLM_FP16_TARGET inline void ScoresTiles(const uint16_t* tiles, const uint32_t* q, int64_t hd,
                                        float* s, int64_t ld, const bool* full, __m512* vmax) {
  const auto* kh = reinterpret_cast<const _Float16*>(tiles);
  // Chunks go in pairs: the first chunk's fp16 sums wait in `held` (one store, no conversion)
  // and are added to the second's in fp16, so each pair is widened to f32 once.
  alignas(64) __m512h held[kRows][NT];
  for (int64_t d0 = 0; d0 < hd; d0 += kChunk) {
    __m512h h[kRows][NT];
    for (int64_t i = 0; i < kRows; ++i)
      for (int t = 0; t < NT; ++t) h[i][t] = _mm512_setzero_ph();
    for (int64_t d = d0; d < d0 + kChunk; ++d) {
      __m512h k[NT];
      for (int t = 0; t < NT; ++t) k[t] = _mm512_loadu_ph(kh + t * 32 * hd + d * 32);
      for (int64_t i = 0; i < kRows; ++i) {
        const __m512h qv = Broadcast(q + i * hd + d);
        for (int t = 0; t < NT; ++t) h[i][t] = _mm512_fmadd_ph(qv, k[t], h[i][t]);
      }
    }
    const bool last = d0 + kChunk >= hd;
    if ((d0 / kChunk) % 2 == 0 && !last) {
      for (int64_t i = 0; i < kRows; ++i)
        for (int t = 0; t < NT; ++t) held[i][t] = h[i][t];
      continue;
    }
    const bool paired = (d0 / kChunk) % 2 == 1;
    const bool first_out = d0 < 2 * kChunk;  // the first f32 write of s for these keys
    for (int64_t i = 0; i < kRows; ++i)
      for (int t = 0; t < NT; ++t) {
        float* st = s + i * ld + t * 32;
        const __m512h sum = paired ? _mm512_add_ph(h[i][t], held[i][t]) : h[i][t];
        __m512 lo = LowHalf(sum), hi = HighHalf(sum);
        if (!first_out) {
          lo = _mm512_add_ps(lo, _mm512_loadu_ps(st));
          hi = _mm512_add_ps(hi, _mm512_loadu_ps(st + 16));
        }
        _mm512_storeu_ps(st, lo);
        _mm512_storeu_ps(st + 16, hi);
        if (last && full[t]) vmax[i] = _mm512_max_ps(vmax[i], _mm512_max_ps(lo, hi));
      }
  }
}

}  // namespace

PLM_FP16_TARGET void ScoresTile(const uint16_t* tile, const uint32_t* q, int64_t hd, float* s,
                                int64_t ld, bool full, __m512* vmax) {
  ScoresTiles<1>(tile, q, hd, s, ld, &full, vmax);
}

PLM_FP16_TARGET void ScoresTilePair(const uint16_t* tiles, const uint32_t* q, int64_t hd, float* s,
                                    int64_t ld, const bool* full, __m512* vmax) {
  ScoresTiles<2>(tiles, q, hd, s, ld, full, vmax);
}

PLM_FP16_TARGET void PvAccumulate(const uint16_t* v, int64_t hd, int64_t keys, const uint32_t* p,
                                  int64_t p_stride, const float* alpha, float* o) {
  const auto* vh = reinterpret_cast<const _Float16*>(v);
  // 64 dimensions (two fp16 vectors) per row per step: two value loads and eight broadcast
  // probabilities per 16 FMAs. The f32 sums live in o (L1); the first write applies alpha.
  // Chunks of 32 keys go in pairs as in ScoresTiles: the first one's fp16 sums wait in `held`
  // and are added to the second's in fp16, then widened to f32 once per pair.
  alignas(64) __m512h held[kRows][2];
  for (int64_t d0 = 0; d0 < hd; d0 += 64) {
    const int nv = hd - d0 >= 64 ? 2 : 1;
    for (int64_t j0 = 0; j0 < keys; j0 += kChunk) {
      __m512h h[kRows][2];
      for (int64_t i = 0; i < kRows; ++i) h[i][0] = h[i][1] = _mm512_setzero_ph();
      const int64_t j1 = std::min(keys, j0 + kChunk);
      if (nv == 2) {
        for (int64_t j = j0; j < j1; ++j) {
          const __m512h v0 = _mm512_loadu_ph(vh + j * hd + d0);
          const __m512h v1 = _mm512_loadu_ph(vh + j * hd + d0 + 32);
          for (int64_t i = 0; i < kRows; ++i) {
            const __m512h pv = Broadcast(p + i * p_stride + j);
            h[i][0] = _mm512_fmadd_ph(pv, v0, h[i][0]);
            h[i][1] = _mm512_fmadd_ph(pv, v1, h[i][1]);
          }
        }
      } else {
        for (int64_t j = j0; j < j1; ++j) {
          const __m512h v0 = _mm512_loadu_ph(vh + j * hd + d0);
          for (int64_t i = 0; i < kRows; ++i)
            h[i][0] = _mm512_fmadd_ph(Broadcast(p + i * p_stride + j), v0, h[i][0]);
        }
      }
      const bool first = (j0 / kChunk) % 2 == 0;
      if (first && j1 < keys) {
        for (int64_t i = 0; i < kRows; ++i)
          for (int c = 0; c < nv; ++c) held[i][c] = h[i][c];
        continue;
      }
      for (int64_t i = 0; i < kRows; ++i) {
        const __m512 al = _mm512_set1_ps(j0 < 2 * kChunk ? alpha[i] : 1.0f);
        for (int c = 0; c < nv; ++c) {
          const __m512h sum = first ? h[i][c] : _mm512_add_ph(h[i][c], held[i][c]);
          float* oc = o + i * hd + d0 + 32 * c;
          _mm512_storeu_ps(oc, _mm512_fmadd_ps(al, _mm512_loadu_ps(oc), LowHalf(sum)));
          _mm512_storeu_ps(oc + 16, _mm512_fmadd_ps(al, _mm512_loadu_ps(oc + 16), HighHalf(sum)));
        }
      }
    }
  }
}

}  // namespace plm::fp16
