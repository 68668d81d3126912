// The fp16 pieces of the many-query flash attention kernel (core/attention.cc) for CPUs with
// AVX512-FP16, whose fp16 FMAs do 32 multiply-adds per instruction at the f32 FMA's rate.
// Products accumulate in fp16 over 32 terms (32 dimensions of a score, 32 keys of an output),
// two such sums are added in fp16 (one more rounding, so that a pair is widened once), then the
// pairs in f32; the inputs are scaled by powers of two (exact) so that no partial sum can leave
// the fp16 range, whatever the magnitudes of the call's queries, keys and values.
// Storage is uint16_t (fp16 bits), so the callers need no fp16 types or target flags.
#pragma once

#include <cstdint>

#include <immintrin.h>

namespace plm::fp16 {

// Power-of-two exponents for one call: queries x 2^q, keys x 2^k, values x 2^v. Scores then come
// out x 2^(q + k) and outputs x 2^v. ok = false when an input is not finite (the caller takes
// its f32 kernel, which propagates NaN/inf as the reference does).
struct Exponents {
  int q = 0, k = 0, v = 0;
  bool ok = true;
};

// The largest |x| over rows [0, rows) of n values, row stride `stride` (f32 or bf16 bits); a NaN
// gives NaN.
float MaxAbsF32(const float* x, int64_t rows, int64_t n, int64_t stride);
float MaxAbsBf16(const uint16_t* x, int64_t count);
float MaxAbsBf16Rows(const uint16_t* x, int64_t rows, int64_t n, int64_t stride);

// Exponents from the inputs' largest magnitudes: queries below 64, keys below 8 (a sum of 32
// products stays below 16384, two of them below 32768), values below 512 (32 probabilities <= 1
// times them likewise).
Exponents ChooseExponents(float max_q, float max_k, float max_v);

// x[0, n) * scale -> fp16 (scale = 2^e from Exponents, computed once per call by the caller:
// a power of two, so the product rounds only where fp16 does).
void ToF16Scaled(const float* x, int64_t n, float scale, uint16_t* out);
// The same as pairs (h, h) in 32 bits: the queries' layout for ScoresTile.
void ToF16PairsScaled(const float* x, int64_t n, float scale, uint32_t* out);
void Bf16ToF16Scaled(const uint16_t* x, int64_t n, float scale, uint16_t* out);
// Keys (nk rows of hd, row stride `stride`) x scale -> 32-key tiles [hd][32] of fp16, zero past
// the last key: ScoresTile's layout, 32 keys of one dimension gathered per step (32-bit gather
// indices: 15 * stride must fit in int32).
void PackKeyTiles(const float* k, int64_t nk, int64_t hd, int64_t stride, float scale,
                  uint16_t* out);

// Scores of 8 query rows (fp16 pairs from ToF16PairsScaled, row stride hd) against one tile of 32
// keys ([hd][32] fp16): s[i * ld + c] for c < 32, in f32, unscaled (x 2^(q + k)). `full`: the rows
// see every key of the tile, so each row's running maximum vmax[i] takes its 32 scores here. hd %
// 32 == 0.
void ScoresTile(const uint16_t* tile, const uint32_t* q, int64_t hd, float* s, int64_t ld,
                bool full, __m512* vmax);
// The same for two consecutive tiles (64 keys, s[i * ld + c] for c < 64; full[0], full[1]).
void ScoresTilePair(const uint16_t* tiles, const uint32_t* q, int64_t hd, float* s, int64_t ld,
                    const bool* full, __m512* vmax);

// 16 fp16 values -> 16 pairs (h, h): a 32-bit broadcast of a pair is a plain load, where a
// 16-bit broadcast also takes a shuffle on the port the FMAs need.
__attribute__((target("avx512f"), always_inline)) inline __m512i Pairs(__m256i h) {
  const __m512i w = _mm512_cvtepu16_epi32(h);
  return _mm512_or_si512(w, _mm512_slli_epi32(w, 16));
}

// 16 probabilities (f32, in [0, 1]) -> 16 fp16 pairs at out: PvAccumulate's layout, written by
// the softmax directly (vcvtps2ph rounds to nearest even like the fp16 FMAs; one vpermw makes
// the pairs, where Pairs' widen, shift and or took three instructions on the softmax's ports).
__attribute__((target("avx512f,avx512bw"), always_inline)) inline void ProbsToPairs(__m512 p,
                                                                                    uint32_t* out) {
  const __m512i dup = _mm512_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8,
                                       7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m256i h = _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm512_storeu_si512(out, _mm512_permutexvar_epi16(dup, _mm512_castsi256_si512(h)));
}

// o[i] = alpha[i] * o[i] + sum_j p[i * p_stride + j] * v[j] for 8 rows (o row stride hd, f32),
// j < keys; v: rows of hd fp16 values; p: probabilities as fp16 pairs (ProbsToPairs). hd % 32 ==
// 0.
void PvAccumulate(const uint16_t* v, int64_t hd, int64_t keys, const uint32_t* p, int64_t p_stride,
                  const float* alpha, float* o);

}  // namespace plm::fp16
