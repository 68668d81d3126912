#include "core/gemv_avx2.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/simd_avx2.h"

namespace plm {

namespace {

// bf16 weight rows per tile (each activation vector serves them all; bf16 rows are long enough
// streams at the 1B's k = 2048, 4 KB) and activation rows per tile (R x M accumulators, the R
// weight vectors and temporaries fit the 16 ymm registers). The small loops over them carry
// `#pragma GCC unroll`: without it GCC 12 kept the accumulators in memory (a store and a reload
// on every FMA's chain).
constexpr int kRows = 4;
constexpr int kGroup = 2;

// Prefetches the R rows after those at row0 (row_bytes apart) at `offset`: called with the tile's
// rows, one tile ahead of the reads (the hardware prefetchers start each row's stream late; the
// same scheme as the AVX-512 kernels).
template <int R>
__attribute__((always_inline)) inline void PrefetchNextTile(const void* row0, int64_t row_bytes,
                                                            int64_t offset) {
  const char* base = static_cast<const char*>(row0) + R * row_bytes + offset;
  for (int rr = 0; rr < R; ++rr) _mm_prefetch(base + rr * row_bytes, _MM_HINT_T0);
}

// 8 bf16 values widened to f32 (the bf16 bits are the high half of the f32).
__attribute__((target(PLM_AVX2), always_inline)) inline __m256 WidenBf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Calls f.template operator()<R>(r) for the weight-row tiles of [r0, r1): kRows rows at a time,
// then one at a time.
template <typename F>
void ForRowTiles(int64_t r0, int64_t r1, F&& f) {
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) f.template operator()<kRows>(r);
  for (; r < r1; ++r) f.template operator()<1>(r);
}

// Calls f.template operator()<M>(i0) for groups of at most kGroup activation rows.
template <typename F>
void ForRowGroups(int64_t m, F&& f) {
  int64_t i = 0;
  for (; i + kGroup <= m; i += kGroup) f.template operator()<kGroup>(i);
  if (i < m) f.template operator()<1>(i);
}

// ---------------------------------------------------------------------------------------------
// bf16

template <int R, int M>
__attribute__((target(PLM_AVX2))) void Bf16Tile(const float* xr, const uint16_t* w, float* y,
                                                int64_t n, int64_t k, int64_t r, int64_t i0) {
  const uint16_t* wr = w + r * k;
  const float* xi = xr + i0 * k;
  __m256 acc[R][M];
#pragma GCC unroll 8
  for (int rr = 0; rr < R; ++rr)
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    if (j % 32 == 0) PrefetchNextTile<R>(wr, k * 2, j * 2);
    __m256 wv[R];
#pragma GCC unroll 8
    for (int rr = 0; rr < R; ++rr) wv[rr] = WidenBf16(wr + rr * k + j);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 xv = _mm256_loadu_ps(xi + i * k + j);
#pragma GCC unroll 8
      for (int rr = 0; rr < R; ++rr) acc[rr][i] = _mm256_fmadd_ps(xv, wv[rr], acc[rr][i]);
    }
  }
#pragma GCC unroll 8
  for (int rr = 0; rr < R; ++rr)
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      float s = HSum(acc[rr][i]);
      for (int64_t t = j; t < k; ++t) s += xi[i * k + t] * Bf16ToF32(wr[rr * k + t]);
      y[(i0 + i) * n + r + rr] = s;
    }
}

// ---------------------------------------------------------------------------------------------
// q8 and q4: one weight row at a time. Consecutive rows are then one sequential stream (tiles of
// 4 rows read 4 short streams at once, 1-2 KB each at the 1B's k = 2048, which the hardware
// prefetchers follow poorly on AMD Zen 2: q4 at ~0.6 and q8 at ~0.8 of the read probe, against
// ~0.9 row by row, docs/PERFORMANCE.md session 23). An activation load serving one row costs
// little: they come from L1.

// Bytes ahead of the current read at which the row kernels prefetch (into L1) their weight
// stream; the rows are contiguous, so this runs on into the rows that follow. Measured on Zen 2
// over 128 MiB of k = 2048 and 8192 rows, 2 threads: q8 1024 B 26.4-26.8 GB/s against 22.5-23.9
// at 2-4 KB; q4 2-4 KB 25.1-26.4 against ~20 without.
constexpr int64_t kQ8AheadBytes = 1024;
constexpr int64_t kQ4AheadBytes = 4096;

// q8: |w| (u8) times x with w's sign (s8): pairs of products summed in int16, then in int32.
// This way round every int8 weight is exact, -128 included (|-128| is 128 as u8; x is in
// [-127, 127], so negating it is exact too): pairs of at most 2 * 128 * 127, no saturation.
template <int M>
__attribute__((target(PLM_AVX2))) void Q8Row(const int8_t* xq, const float* xs, const Q8Matrix& w,
                                             float* y, int64_t r, int64_t i0) {
  const int64_t k = w.k, n = w.n;
  const int8_t* wr = w.q + r * k;
  const int8_t* xi = xq + i0 * k;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    if (j % 64 == 0)
      _mm_prefetch(reinterpret_cast<const char*>(wr + j) + kQ8AheadBytes, _MM_HINT_T0);
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j));
    const __m256i aw = _mm256_abs_epi8(wv);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xi + i * k + j));
      const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    int32_t d = HSum(acc[i]);
    for (int64_t t = j; t < k; ++t) d += static_cast<int32_t>(xi[i * k + t]) * wr[t];
    y[(i0 + i) * n + r] = xs[i0 + i] * w.scale[r] * static_cast<float>(d);
  }
}

// q4: per group of 64 weights, 32 bytes; the low nibbles are block 2g (A), the high ones block
// 2g + 1 (B) (values + 8). vpmaddubsw(nibbles, x) gives pairs of products (at most 2 * 15 * 127).
// Two blends, a swap of 32-bit lanes and an add leave int16 sums of 4 products (at most 7620: no
// wrap) of block A in the even and of block B in the odd int32 lanes of one vpmaddwd, so one
// conversion and one FMA with the scale pair [sA sB] broadcast serve both blocks. (vphaddw did
// the same with the lanes in another order at half an instruction per cycle on AMD Zen 2, and the
// scale vectors it needed took a permute each: 7.7 vs 6.4 cycles per 64 weights of one row there,
// L1-resident.)

// Row r's block scales in f32 (sv[b]): Q4Row broadcasts a pair per group with a plain load.
__attribute__((target(PLM_AVX2))) void Q4ScalesF32(const Q4Matrix& w, int64_t r, float* sv) {
  const int64_t nb = w.k / kQ4Block;
  const uint16_t* s = w.scale + r * nb;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8)
    _mm256_storeu_ps(sv + b,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + b))));
  for (; b < nb; ++b) sv[b] = F16ToF32(s[b]);
}

// One group's products of row (b: its 32 bytes, s: its scale pair) with activation row x,
// accumulated into acc.
__attribute__((target(PLM_AVX2), always_inline)) inline void Q4Group(__m256i lo, __m256i hi,
                                                                     __m256 s, const int8_t* x,
                                                                     __m256& acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i p0 =
      _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
  const __m256i p1 =
      _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32)));
  // [A0 A1 B2 B3 ...] + [A2 A3 B0 B1 ...]: int16 pairs of block A in the even int32 lanes, of
  // block B in the odd ones (sums of 4 products, at most 7620).
  const __m256i u = _mm256_blend_epi16(p0, p1, 0xCC);
  const __m256i v = _mm256_shuffle_epi32(_mm256_blend_epi16(p1, p0, 0xCC), 0xB1);
  const __m256i d = _mm256_madd_epi16(_mm256_add_epi16(u, v), ones);
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), s, acc);
}

// Group g of a weight row (wr) against M activation rows (xi, k apart), into accumulators h.
template <int M, int H>
__attribute__((target(PLM_AVX2), always_inline)) inline void Q4GroupRows(const uint8_t* wr,
                                                                         const float* sv,
                                                                         const int8_t* xi,
                                                                         int64_t k, int64_t g,
                                                                         __m256 (&acc)[M][2]) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + g * 32));
  const __m256i lo = _mm256_and_si256(b, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low);
  const __m256 s =
      _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(sv + 2 * g)));
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) Q4Group(lo, hi, s, xi + i * k + g * 64, acc[i][H]);
}

template <int M>
__attribute__((target(PLM_AVX2))) void Q4Row(const int8_t* xq, const float* xs, const float* nsum,
                                             const Q4Matrix& w, float* sv, float* y, int64_t r,
                                             int64_t i0) {
  const int64_t k = w.k, n = w.n, nb = k / kQ4Block, groups = k / 64;
  const uint8_t* wr = w.q + r * (k / 2);
  const int8_t* xi = xq + i0 * k;
  // Two accumulators per activation row: the FMA's latency exceeds a group's work.
  __m256 acc[M][2];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {  // a cache line of weights
    _mm_prefetch(reinterpret_cast<const char*>(wr + g * 32) + kQ4AheadBytes, _MM_HINT_T0);
    Q4GroupRows<M, 0>(wr, sv, xi, k, g, acc);
    Q4GroupRows<M, 1>(wr, sv, xi, k, g + 1, acc);
  }
  if (g < groups) Q4GroupRows<M, 0>(wr, sv, xi, k, g, acc);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    // The zero points: sum over blocks of scale * (-8 * sum of x).
    const float* ns = nsum + (i0 + i) * nb;
    __m256 z = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= nb; c += 8)
      z = _mm256_fmadd_ps(_mm256_loadu_ps(sv + c), _mm256_loadu_ps(ns + c), z);
    float zs = HSum(z);
    for (; c < nb; ++c) zs += sv[c] * ns[c];
    y[(i0 + i) * n + r] = xs[i0 + i] * (HSum(_mm256_add_ps(acc[i][0], acc[i][1])) + zs);
  }
}

}  // namespace

void GemvBf16Avx2(const float* xr, const uint16_t* w, float* y, int64_t m, int64_t n, int64_t k,
                  int64_t r0, int64_t r1) {
  ForRowTiles(r0, r1, [&]<int R>(int64_t r) {
    ForRowGroups(m, [&]<int M>(int64_t i0) { Bf16Tile<R, M>(xr, w, y, n, k, r, i0); });
  });
}

void GemvQ8Avx2(const int8_t* xq, const float* xs, const Q8Matrix& w, float* y, int64_t m,
                int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    ForRowGroups(m, [&]<int M>(int64_t i0) { Q8Row<M>(xq, xs, w, y, r, i0); });
}

void GemvQ4Avx2(const int8_t* xq, const float* xs, const float* nsum, const Q4Matrix& w, float* y,
                int64_t m, int64_t r0, int64_t r1) {
  thread_local std::vector<float> scales;
  const int64_t size = w.k / kQ4Block;
  if (scales.size() < static_cast<size_t>(size)) scales.resize(size);
  float* sv = scales.data();
  const int64_t scale_bytes = w.k / kQ4Block * 2;
  for (int64_t r = r0; r < r1; ++r) {
    // The scales of a later row (a second, slower stream: 128 bytes a row at k = 2048).
    const char* later = reinterpret_cast<const char*>(w.scale) + (r + 8) * scale_bytes;
    for (int64_t off = 0; off < scale_bytes; off += 64) _mm_prefetch(later + off, _MM_HINT_T0);
    Q4ScalesF32(w, r, sv);
    ForRowGroups(m, [&]<int M>(int64_t i0) { Q4Row<M>(xq, xs, nsum, w, sv, y, r, i0); });
  }
}

}  // namespace plm
