#include "core/flash_q8.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/simd.h"

#define PLM_Q8A_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

namespace plm::q8attn {

namespace {

constexpr int64_t kRows = 8;  // query rows per call (the flash kernel's block)
constexpr int64_t kTile = 32;

// max |x| over hd values (hd % 16 == 0).
PLM_Q8A_TARGET inline float MaxAbs(const float* x, const float* minus, int64_t hd) {
  __m512 m = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd; d += 16) {
    __m512 v = _mm512_loadu_ps(x + d);
    if (minus != nullptr) v = _mm512_sub_ps(v, _mm512_loadu_ps(minus + d));
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  return _mm512_reduce_max_ps(m);
}

}  // namespace

PLM_Q8A_TARGET bool PackKeys(const float* k, int64_t nk, int64_t hd, int64_t stride, int8_t* tiles,
                             float* scale, int32_t* offset) {
  thread_local std::vector<float> mean_buf;
  mean_buf.assign(static_cast<size_t>(hd), 0.0f);
  float* mean = mean_buf.data();
  __mmask16 bad = 0;  // lanes of the mean that are inf or NaN (x - x is NaN exactly for those)
  for (int64_t d = 0; d < hd; d += 16) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; ++j) acc = _mm512_add_ps(acc, _mm512_loadu_ps(k + j * stride + d));
    const __m512 mv = _mm512_div_ps(acc, _mm512_set1_ps(static_cast<float>(nk)));
    bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(mv, mv), _mm512_sub_ps(mv, mv), _CMP_UNORD_Q);
    _mm512_storeu_ps(mean + d, mv);
  }
  if (bad != 0) return false;
  const int64_t padded = (nk + kTile - 1) / kTile * kTile;
  if (padded > nk) {  // the last tile's keys past nk: zero, with zero scale and offset
    std::memset(tiles + (nk / kTile) * kTile * hd, 0, static_cast<size_t>(kTile * hd));
    std::fill(scale + nk, scale + padded, 0.0f);
    std::fill(offset + nk, offset + padded, 0);
  }
  for (int64_t j = 0; j < nk; ++j) {
    const float* kj = k + j * stride;
    const float mx = MaxAbs(kj, mean, hd);
    scale[j] = mx / 127.0f;
    const __m512 inv = _mm512_set1_ps(mx > 0.0f ? 127.0f / mx : 0.0f);
    int8_t* tile = tiles + (j / kTile) * kTile * hd + (j % kTile) * 4;
    __m512i sum = _mm512_setzero_si512();
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512 x = _mm512_sub_ps(_mm512_loadu_ps(kj + d), _mm512_loadu_ps(mean + d));
      const __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(x, inv));  // nearest even
      sum = _mm512_add_epi32(sum, qi);
      alignas(16) int32_t groups[4];  // dimensions d..d+15 as four groups of 4 bytes
      _mm_store_si128(reinterpret_cast<__m128i*>(groups), _mm512_cvtsepi32_epi8(qi));
      for (int64_t c = 0; c < 4; ++c)
        std::memcpy(tile + (d / 4 + c) * kTile * 4, groups + c, sizeof(int32_t));
    }
    offset[j] = -128 * _mm512_reduce_add_epi32(sum);
  }
  return true;
}

PLM_Q8A_TARGET void QuantizeQueries(const float* q, int64_t rows, int64_t hd, int64_t stride,
                                    uint8_t* out, float* scale) {
  const __m512i bias = _mm512_set1_epi32(128);
  for (int64_t i = 0; i < rows; ++i) {
    const float* qi = q + i * stride;
    const float mx = MaxAbs(qi, nullptr, hd);
    scale[i] = mx > 0.0f ? mx / 127.0f : 1.0f;
    const __m512 inv = _mm512_set1_ps(mx > 0.0f ? 127.0f / mx : 0.0f);
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512i qv =
          _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(qi + d), inv)), bias);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i * hd + d), _mm512_cvtusepi32_epi8(qv));
    }
  }
}

// One query row's 4 u8 values as a broadcast group.
PLM_Q8A_TARGET inline __m512i QueryGroup(const uint8_t* p) {
  int32_t x4;
  std::memcpy(&x4, p, sizeof(x4));
  return _mm512_set1_epi32(x4);
}

PLM_Q8A_TARGET void ScoresTile(const int8_t* tile, const uint8_t* q, int64_t hd, const float* qs,
                               const float* ks, const int32_t* koff, float* s, int64_t ld,
                               bool full, __m512* vmax) {
  // Per 4 dimensions two key loads (16 keys each) and one broadcast query group per row give 16
  // vpdpbusd into keys 0-15 (x) and 16-31 (y) of each row. Named sums, not an array: GCC 12 at
  // -O3 kept an array of them in memory or copied each to another register and back per step.
  static_assert(kRows == 8);
#define PLM_Q8A_ZERO(i) __m512i x##i = _mm512_setzero_si512(), y##i = _mm512_setzero_si512()
  PLM_Q8A_ZERO(0);
  PLM_Q8A_ZERO(1);
  PLM_Q8A_ZERO(2);
  PLM_Q8A_ZERO(3);
  PLM_Q8A_ZERO(4);
  PLM_Q8A_ZERO(5);
  PLM_Q8A_ZERO(6);
  PLM_Q8A_ZERO(7);
#undef PLM_Q8A_ZERO
  for (int64_t g = 0; g < hd / 4; ++g) {
    const __m512i k0 = _mm512_loadu_si512(tile + g * kTile * 4);
    const __m512i k1 = _mm512_loadu_si512(tile + g * kTile * 4 + 64);
#define PLM_Q8A_ROW(i)                                 \
  do {                                                 \
    const __m512i qv = QueryGroup(q + (i)*hd + 4 * g); \
    x##i = _mm512_dpbusd_epi32(x##i, qv, k0);          \
    y##i = _mm512_dpbusd_epi32(y##i, qv, k1);          \
  } while (false)
    PLM_Q8A_ROW(0);
    PLM_Q8A_ROW(1);
    PLM_Q8A_ROW(2);
    PLM_Q8A_ROW(3);
    PLM_Q8A_ROW(4);
    PLM_Q8A_ROW(5);
    PLM_Q8A_ROW(6);
    PLM_Q8A_ROW(7);
#undef PLM_Q8A_ROW
  }
  // The sums go through memory to the epilogue: used there straight from registers, GCC 12
  // again copied each one to another register and back on every step of the loop above.
  alignas(64) int32_t sums[kRows][32];
#define PLM_Q8A_STORE(i)                    \
  do {                                      \
    _mm512_store_si512(sums[i], x##i);      \
    _mm512_store_si512(sums[i] + 16, y##i); \
  } while (false)
  PLM_Q8A_STORE(0);
  PLM_Q8A_STORE(1);
  PLM_Q8A_STORE(2);
  PLM_Q8A_STORE(3);
  PLM_Q8A_STORE(4);
  PLM_Q8A_STORE(5);
  PLM_Q8A_STORE(6);
  PLM_Q8A_STORE(7);
#undef PLM_Q8A_STORE
  asm volatile("" ::: "memory");  // (the loads below are not folded back into the sums)
  const __m512 ks0 = _mm512_loadu_ps(ks), ks1 = _mm512_loadu_ps(ks + 16);
  const __m512i o0 = _mm512_loadu_si512(koff), o1 = _mm512_loadu_si512(koff + 16);
  for (int64_t i = 0; i < kRows; ++i) {
    const __m512 sq = _mm512_set1_ps(qs[i]);
    const __m512 lo =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_load_si512(sums[i]), o0)),
                      _mm512_mul_ps(ks0, sq));
    const __m512 hi =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_load_si512(sums[i] + 16), o1)),
                      _mm512_mul_ps(ks1, sq));
    _mm512_storeu_ps(s + i * ld, lo);
    _mm512_storeu_ps(s + i * ld + 16, hi);
    if (full) vmax[i] = _mm512_max_ps(vmax[i], _mm512_max_ps(lo, hi));
  }
}

}  // namespace plm::q8attn
