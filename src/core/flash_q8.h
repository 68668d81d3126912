// Int8 scores for the many-query flash attention kernel (core/attention.cc), taken where the
// caller allows them (AttentionArgs::int8_scores: the q8/q4 vision tower) on CPUs with
// AVX512-VNNI: each vpdpbusd adds 64 products (16 keys x 4 dimensions), twice the fp16 FMA's 32.
// Queries are quantized per row to u8 (q / s + 128, s = max |q| / 127), keys per key to int8
// after the call's mean key is subtracted: every score of a query row then moves by the same
// q · mean, which the softmax does not see, and the keys' common part (bias) no longer takes
// the 8 bits' range. The +128 of the queries is removed exactly through each key's integer sum.
// The values and P·V stay fp16 (core/flash_fp16.h).
#pragma once

#include <cstdint>

#include <immintrin.h>

namespace plm::q8attn {

// Bytes of the key tiles for nk keys of hd dimensions (whole tiles of 32 keys).
inline int64_t KeyTileBytes(int64_t nk, int64_t hd) {
  return (nk + 31) / 32 * 32 * hd;
}

// Keys (nk rows of hd, row stride `stride`) minus their mean, quantized per key: `tiles` (of
// KeyTileBytes) as 32-key tiles [hd / 4][32][4] int8, zero past the last key; scale[j] the
// key's scale (0 past the last key, up to a whole tile), offset[j] = -128 * (the sum of its
// int8 values). hd % 16 == 0. Returns false (the outputs unspecified) when the mean key is not
// finite: a key with inf or NaN (or sums past the f32 range).
bool PackKeys(const float* k, int64_t nk, int64_t hd, int64_t stride, int8_t* tiles, float* scale,
              int32_t* offset);

// rows of hd queries (row stride `stride`) as u8 = round(q / s) + 128 into out (row stride hd),
// s = max |q| / 127 per row (1 for a zero row) into scale. hd % 16 == 0; the inputs finite.
void QuantizeQueries(const float* q, int64_t rows, int64_t hd, int64_t stride, uint8_t* out,
                     float* scale);

// Scores of 8 query rows (QuantizeQueries' u8 rows, row stride hd, and their scales qs) against
// one 32-key tile (PackKeys' tile, scales ks and offsets koff of its 32 keys):
// s[i * ld + c] = qs[i] * ks[c] * (q_i · k_c - 128 sum k_c) for c < 32, in f32, against the mean
// key. `full`: the rows see every key of the tile, so each row's running maximum vmax[i] takes
// its 32 scores here. hd % 16 == 0.
void ScoresTile(const int8_t* tile, const uint8_t* q, int64_t hd, const float* qs, const float* ks,
                const int32_t* koff, float* s, int64_t ld, bool full, __m512* vmax);

}  // namespace plm::q8attn
