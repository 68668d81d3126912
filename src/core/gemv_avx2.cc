#include "core/gemv_avx2.h"

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "core/simd_avx2.h"

namespace plm {

namespace {

// Weight rows per tile (each activation vector serves them all) and activation rows per tile
// (R x M accumulators, the R weight vectors and temporaries fit the 16 ymm registers).
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
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    if (j % 32 == 0) PrefetchNextTile<R>(wr, k * 2, j * 2);
    __m256 wv[R];
    for (int rr = 0; rr < R; ++rr) wv[rr] = WidenBf16(wr + rr * k + j);
    for (int i = 0; i < M; ++i) {
      const __m256 xv = _mm256_loadu_ps(xi + i * k + j);
      for (int rr = 0; rr < R; ++rr) acc[rr][i] = _mm256_fmadd_ps(xv, wv[rr], acc[rr][i]);
    }
  }
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) {
      float s = HSum(acc[rr][i]);
      for (int64_t t = j; t < k; ++t) s += xi[i * k + t] * Bf16ToF32(wr[rr * k + t]);
      y[(i0 + i) * n + r + rr] = s;
    }
}

// ---------------------------------------------------------------------------------------------
// q8: |w| (u8) times x with w's sign (s8): pairs of products summed in int16, then in int32.
// This way round every int8 weight is exact, -128 included (|-128| is 128 as u8; x is in
// [-127, 127], so negating it is exact too): pairs of at most 2 * 128 * 127, no saturation.

template <int R, int M>
__attribute__((target(PLM_AVX2))) void Q8Tile(const int8_t* xq, const float* xs, const Q8Matrix& w,
                                              float* y, int64_t r, int64_t i0) {
  const int64_t k = w.k, n = w.n;
  const int8_t* wr = w.q + r * k;
  const int8_t* xi = xq + i0 * k;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][M];
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm256_setzero_si256();
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    if (j % 64 == 0) PrefetchNextTile<R>(wr, k, j);
    __m256i wv[R];
    for (int rr = 0; rr < R; ++rr)
      wv[rr] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + rr * k + j));
    for (int i = 0; i < M; ++i) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xi + i * k + j));
      for (int rr = 0; rr < R; ++rr) {
        const __m256i p =
            _mm256_maddubs_epi16(_mm256_abs_epi8(wv[rr]), _mm256_sign_epi8(xv, wv[rr]));
        acc[rr][i] = _mm256_add_epi32(acc[rr][i], _mm256_madd_epi16(p, ones));
      }
    }
  }
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) {
      int32_t d = HSum(acc[rr][i]);
      for (int64_t t = j; t < k; ++t) d += static_cast<int32_t>(xi[i * k + t]) * wr[rr * k + t];
      y[(i0 + i) * n + r + rr] = xs[i0 + i] * w.scale[r + rr] * static_cast<float>(d);
    }
}

// ---------------------------------------------------------------------------------------------
// q4: per group of 64 weights, 32 bytes; the low nibbles are block 2g, the high ones block
// 2g + 1 (values + 8). vpmaddubsw(nibbles, x) gives pairs of products (at most 2 * 15 * 127);
// vphaddw of the two blocks' pairs (sums of 4 products, at most 7620: no wrap) and vpmaddwd put
// block 2g in int32 lanes 0, 1, 4, 5 and block 2g + 1 in lanes 2, 3, 6, 7, so one conversion and
// one FMA with the scale vector [s0 s0 s1 s1 s0 s0 s1 s1] serve both blocks (a third fewer
// instructions on the multiply ports than one conversion and FMA per block).

// The scale vectors of rows [r, r + R) for Q4Tile: sv[(rr * groups + g) * 8 + lane].
template <int R>
__attribute__((target(PLM_AVX2))) void Q4ScaleVectors(const Q4Matrix& w, int64_t r, float* sv) {
  const int64_t nb = w.k / kQ4Block, groups = w.k / 64;
  // Lanes of 8 converted scales (4 groups) for groups 4t + u.
  const __m256i pick[4] = {
      _mm256_setr_epi32(0, 0, 1, 1, 0, 0, 1, 1), _mm256_setr_epi32(2, 2, 3, 3, 2, 2, 3, 3),
      _mm256_setr_epi32(4, 4, 5, 5, 4, 4, 5, 5), _mm256_setr_epi32(6, 6, 7, 7, 6, 6, 7, 7)};
  for (int rr = 0; rr < R; ++rr) {
    const uint16_t* s = w.scale + (r + rr) * nb;
    float* out = sv + rr * groups * 8;
    int64_t g = 0;
    for (; g + 4 <= groups; g += 4) {
      const __m256 eight =
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * g)));
      for (int u = 0; u < 4; ++u)
        _mm256_storeu_ps(out + (g + u) * 8, _mm256_permutevar8x32_ps(eight, pick[u]));
    }
    for (; g < groups; ++g) {
      const float s0 = F16ToF32(s[2 * g]), s1 = F16ToF32(s[2 * g + 1]);
      _mm256_storeu_ps(out + g * 8, _mm256_setr_ps(s0, s0, s1, s1, s0, s0, s1, s1));
    }
  }
}

template <int R, int M>
__attribute__((target(PLM_AVX2))) void Q4Tile(const int8_t* xq, const float* xs, const float* nsum,
                                              const Q4Matrix& w, const float* sv, float* y,
                                              int64_t r, int64_t i0) {
  const int64_t k = w.k, n = w.n, nb = k / kQ4Block, groups = k / 64;
  const uint8_t* wr = w.q + r * (k / 2);
  const uint16_t* scales = w.scale + r * nb;
  const int8_t* xi = xq + i0 * k;
  const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  __m256 acc[R][M];
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    // Two tiles ahead: this kernel spends more instructions per byte than the bf16 and q8 ones,
    // so it must ask earlier to keep enough lines in flight (gemm_bench m = 1, 8192 x 2048 at 2
    // threads, alternated: 26.6-32.8 vs 21.3-29.3 GB/s).
    if (g % 2 == 0) PrefetchNextTile<R>(wr + R * (k / 2), k / 2, g * 32);
    for (int rr = 0; rr < R; ++rr) {
      const __m256i b =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + rr * (k / 2) + g * 32));
      const __m256i lo = _mm256_and_si256(b, low);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low);
      const __m256 s = _mm256_loadu_ps(sv + (rr * groups + g) * 8);
      for (int i = 0; i < M; ++i) {
        const int8_t* x = xi + i * k + g * 64;
        const __m256i p0 =
            _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
        const __m256i p1 =
            _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32)));
        const __m256i d = _mm256_madd_epi16(_mm256_hadd_epi16(p0, p1), ones);
        acc[rr][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), s, acc[rr][i]);
      }
    }
  }
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) {
      // The zero points: sum over blocks of scale * (-8 * sum of x).
      const float* ns = nsum + (i0 + i) * nb;
      const uint16_t* sr = scales + rr * nb;
      __m256 z = _mm256_setzero_ps();
      int64_t b = 0;
      for (; b + 8 <= nb; b += 8)
        z = _mm256_fmadd_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sr + b))),
            _mm256_loadu_ps(ns + b), z);
      float zs = HSum(z);
      for (; b < nb; ++b) zs += F16ToF32(sr[b]) * ns[b];
      y[(i0 + i) * n + r + rr] = xs[i0 + i] * (HSum(acc[rr][i]) + zs);
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
  ForRowTiles(r0, r1, [&]<int R>(int64_t r) {
    ForRowGroups(m, [&]<int M>(int64_t i0) { Q8Tile<R, M>(xq, xs, w, y, r, i0); });
  });
}

void GemvQ4Avx2(const int8_t* xq, const float* xs, const float* nsum, const Q4Matrix& w, float* y,
                int64_t m, int64_t r0, int64_t r1) {
  thread_local std::vector<float> scales;
  const int64_t size = kRows * (w.k / 64) * 8;
  if (scales.size() < static_cast<size_t>(size)) scales.resize(size);
  float* sv = scales.data();
  ForRowTiles(r0, r1, [&]<int R>(int64_t r) {
    Q4ScaleVectors<R>(w, r, sv);
    ForRowGroups(m, [&]<int M>(int64_t i0) { Q4Tile<R, M>(xq, xs, nsum, w, sv, y, r, i0); });
  });
}

}  // namespace plm
