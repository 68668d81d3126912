#include "core/gemm_q4_avx2.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/scratch.h"
#include "core/simd_avx2.h"

namespace plm {

namespace {

constexpr int64_t kSlab = 16;        // outputs per pass over the activations: two vectors of 8
constexpr int64_t kSlabBlock = 512;  // packed bytes per slab and 32-value block (8 groups x 2 x 32)
// Activation rows per tile (Zen 2, 512 x 8192 x 2048: 5 and 6 the same speed, 3 3 % less).
constexpr int kMR = 4;

// r[i] dword t -> r[t] dword i (an 8 x 8 transpose of 32-bit elements).
__attribute__((target(PLM_AVX2), always_inline)) inline void Transpose8x32(__m256i (&r)[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);      // a0 b0 c0 d0 | a4 b4 c4 d4
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);  // a1 b1 c1 d1 | a5 ...
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

// Outputs [o0, o0 + 16) of w (rows past n: value 0, scale 0) as wp [nb][8 groups][2][32 bytes]
// (the unsigned nibbles as bytes; output o's 4 inputs at bytes 4 o..4 o + 3 of its vector) and
// sp [nb][16] f32 block scales. Per block, each half of the slab is an 8 x 8 transpose of the
// rows' 4-byte chunks (scalar 4-byte copies cost ~4 ms per 8192 x 2048 matrix on Zen 2).
__attribute__((target(PLM_AVX2))) void PackSlab(const Q4Matrix& w, int64_t o0, uint8_t* wp,
                                                float* sp) {
  const int64_t k = w.k, nb = k / kQ4Block;
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int64_t r = 0; r < kSlab; ++r) {
    const int64_t row = o0 + r;
    int64_t b = 0;
    if (row < w.n) {
      const uint16_t* s = w.scale + row * nb;
      for (; b + 8 <= nb; b += 8) {
        alignas(32) float f[8];
        _mm256_store_ps(f,
                        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + b))));
        for (int64_t c = 0; c < 8; ++c) sp[(b + c) * kSlab + r] = f[c];
      }
      for (; b < nb; ++b) sp[b * kSlab + r] = F16ToF32(s[b]);
    }
    for (; b < nb; ++b) sp[b * kSlab + r] = 0.0f;
  }
  for (int64_t g = 0; g < nb / 2; ++g) {  // 64-value groups: blocks 2g (low) and 2g + 1 (high)
    for (int64_t v = 0; v < 2; ++v) {
      __m256i lo[8], hi[8];
      for (int64_t o = 0; o < 8; ++o) {
        const int64_t row = o0 + 8 * v + o;
        if (row < w.n) {
          const __m256i bytes =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + row * (k / 2) + g * 32));
          lo[o] = _mm256_and_si256(bytes, low);
          hi[o] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
        } else {
          lo[o] = hi[o] = _mm256_set1_epi8(8);
        }
      }
      Transpose8x32(lo);
      Transpose8x32(hi);
      for (int64_t t = 0; t < 8; ++t) {  // inputs 4t..4t+3 of the block
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(wp + 2 * g * kSlabBlock + (t * 2 + v) * 32),
                            lo[t]);
        _mm256_storeu_si256(
            reinterpret_cast<__m256i*>(wp + (2 * g + 1) * kSlabBlock + (t * 2 + v) * 32), hi[t]);
      }
    }
  }
}

// acc += vpmaddubsw(w, x) in int16, in place: written as intrinsics, GCC 12 computed each sum in
// another register and copied it back (8 copies and a spill per step at MR = 4: 245 against 281
// GFLOP/s on Zen 2).
__attribute__((target(PLM_AVX2), always_inline)) inline void MaddAdd(__m256i w, __m256i x,
                                                                     __m256i& acc) {
  __m256i p;
  asm("vpmaddubsw %[x], %[w], %[p]\n\tvpaddw %[p], %[acc], %[acc]"
      : [acc] "+x"(acc), [p] "=&x"(p)
      : [w] "x"(w), [x] "x"(x));
}

// MR activation rows x 16 outputs over all blocks: per block, eight vpmaddubsw per accumulator
// summed in int16 (at most 8 * 2 * 15 * 127 = 30480), one vpmaddwd to int32, then in f32 with the
// zero point (-8 times the block's sum of x) and the block scales. The f32 sums stay in memory
// (L1; touched once a block), so the registers hold 2 MR int16 accumulators: with MR = 4 each
// weight load serves 4 rows. y: MR rows (stride n), `cols` outputs, xs times the sums.
template <int MR>
__attribute__((target(PLM_AVX2))) void Tile(const int8_t* xq, int64_t k, const float* xs,
                                            const float* nsum, const uint8_t* wp, const float* sp,
                                            float* y, int64_t n, int64_t cols) {
  const int64_t nb = k / kQ4Block;
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float facc[MR][kSlab] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* wb = wp + b * kSlabBlock;
    __m256i acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int64_t t = 0; t < 8; ++t) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + t * 64));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + t * 64 + 32));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t x4;
        std::memcpy(&x4, xq + i * k + b * kQ4Block + 4 * t, 4);
        const __m256i xb = _mm256_set1_epi32(x4);
        MaddAdd(w0, xb, acc[i][0]);
        MaddAdd(w1, xb, acc[i][1]);
      }
    }
    const __m256 s0 = _mm256_loadu_ps(sp + b * kSlab), s1 = _mm256_loadu_ps(sp + b * kSlab + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 z = _mm256_set1_ps(nsum[i * nb + b]);
      const __m256 d0 = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(acc[i][0], ones)), z);
      const __m256 d1 = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(acc[i][1], ones)), z);
      _mm256_store_ps(facc[i], _mm256_fmadd_ps(d0, s0, _mm256_load_ps(facc[i])));
      _mm256_store_ps(facc[i] + 8, _mm256_fmadd_ps(d1, s1, _mm256_load_ps(facc[i] + 8)));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int64_t c = 0; c < cols; ++c) y[i * n + c] = facc[i][c] * xs[i];
}

}  // namespace

void GemmQ4RowsAvx2(const int8_t* xq, const float* xs, const float* nsum, const Q4Matrix& w,
                    float* y, int64_t m, int64_t j0, int64_t j1) {
  const int64_t k = w.k, n = w.n, nb = k / kQ4Block;
  thread_local std::vector<uint8_t> packed;
  thread_local std::vector<float> scales;
  uint8_t* wp = GrowScratch(packed, static_cast<size_t>(nb * kSlabBlock));
  float* sp = GrowScratch(scales, static_cast<size_t>(nb * kSlab));
  for (int64_t o0 = j0; o0 < j1; o0 += kSlab) {
    PackSlab(w, o0, wp, sp);
    const int64_t cols = std::min(kSlab, j1 - o0);
    int64_t i = 0;
    for (; i + kMR <= m; i += kMR)
      Tile<kMR>(xq + i * k, k, xs + i, nsum + i * nb, wp, sp, y + i * n + o0, n, cols);
    for (; i < m; ++i)
      Tile<1>(xq + i * k, k, xs + i, nsum + i * nb, wp, sp, y + i * n + o0, n, cols);
  }
}

}  // namespace plm
