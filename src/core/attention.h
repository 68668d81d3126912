// Fused scaled-dot-product attention (no full score matrix: the many-query kernels are
// flash-style — key blocks with an online softmax — the others hold the scores of a few query rows
// at a time), plus vectorisable exp/GELU used by the reduced-precision paths.
// The float32 reference path keeps its simple kernels in ops.h as the correctness oracle.
#pragma once

#include <cstdint>

namespace plm {

struct AttentionArgs {
  const float* q = nullptr;  // [nq, hd], row stride q_stride
  int64_t q_stride = 0;
  const float* k = nullptr;  // [nk, hd], row stride kv_stride
  const float* v = nullptr;
  int64_t kv_stride = 0;
  int64_t k_stride = 0;  // row stride of k when it differs from v's (0: kv_stride)
  // Optional K transposed: kt[d * kt_stride + j]. Much faster for many queries (prefill, vision).
  const float* kt = nullptr;
  int64_t kt_stride = 0;
  float* out = nullptr;  // [nq, hd], row stride out_stride
  int64_t out_stride = 0;
  int64_t nq = 0, nk = 0, hd = 0;
  float scale = 1.0f;
  // >= 0: causal; query i sees keys j <= causal_offset + i. < 0: every key.
  int64_t causal_offset = -1;
  // Optional [nk]: 0 = key is padding (masked). A row with no visible key attends uniformly to
  // all nk keys, as the reference does with finfo.min masking.
  const uint8_t* valid = nullptr;
  // bf16 keys/values instead of k/v: a bf16 KV cache read in place. Keys in the cache's tiles of
  // 32 positions (core/key_tiles.h; k_stride unused), values in rows (kv_stride). kt unused.
  const uint16_t* k16 = nullptr;
  const uint16_t* v16 = nullptr;
  // Allows bf16 products (f32 accumulation and softmax) where AVX512-BF16 exists: used by the
  // reduced-precision compute paths. kt is then not needed. (On Intel the many-query kernel uses
  // f32 FMAs instead, faster there; see UsesBf16ManyQueryKernel.)
  bool bf16 = false;
  // Also allows int8 scores in the many-query kernel on CPUs with AVX512-FP16 and VNNI (queries
  // and keys quantized to 8 bits per row, core/flash_q8.h; P·V stays fp16): the q8/q4 vision
  // tower, whose matrix products are int8 already. f32 keys only (k, not k16).
  bool int8_scores = false;
  // Grouped-query attention: `heads` query heads share these keys/values (head h reads its
  // queries at q + h * q_head_stride and writes out + h * out_head_stride). The bf16 kernel packs
  // K/V once for all of them and reuses each key block across the heads while it is in L1.
  int64_t heads = 1;
  int64_t q_head_stride = 0;
  int64_t out_head_stride = 0;
  // Optional [nq]: each query row's log-sum-exp (natural log) of its scaled, visible scores (-inf
  // when none is visible), so that calls on parts of the keys can be merged (MergeAttentionParts).
  // Only where FillsLse (FusedAttention throws plm::Error(kInvalidArgument) otherwise).
  float* lse = nullptr;
  // Optional: keys and values [nk, nk_prefetch) exist in memory after this call's (a part of a
  // longer cache, DecodePart); the decode kernel's prefetches may run on into them. 0: none.
  int64_t nk_prefetch = 0;
};

// Single-threaded; callers parallelise over heads and query blocks.
void FusedAttention(const AttentionArgs& a);
// Whether FusedAttention takes one of its many-query flash kernels for these arguments (bf16
// products, or f32 FMAs on Intel CPUs, where vdpbf16ps is slow, or on CPUs without the AVX-512
// kernels, core/flash_avx2.h; all pack K/V themselves and ignore kt, so callers can skip
// transposing the keys).
bool UsesBf16ManyQueryKernel(const AttentionArgs& a);
// The many-query attention kernel (vision tiles, prefill) this CPU runs, for reports: "fp16"
// (AVX512-FP16 FMAs), "f32" (f32 FMAs on Intel), "bf16" (vdpbf16ps), "avx2-f32" (CPUs whose
// kernel set is AVX2: core/flash_avx2.h on f32 keys, core/attention_avx2.h on a bf16 cache), or
// "reference" (the f32 path's kernels, and every other CPU). reduced_precision: a bf16/q8/q4 path.
const char* ManyQueryKernelName(bool reduced_precision);
// The same for calls that allow int8 scores (AttentionArgs::int8_scores: the q8/q4 vision tower):
// "fp16+int8-scores" where the fp16 kernel takes them (AVX512-FP16 and VNNI), otherwise as above.
const char* ManyQueryKernelName(bool reduced_precision, bool int8_scores);

// Whether FusedAttention fills AttentionArgs::lse for these arguments: a bf16 cache read by the
// decode kernel (AVX-512, or AVX2 where the CPU has no AVX-512 kernels: core/attention_avx2.h).
bool FillsLse(const AttentionArgs& a);

// Decode attention split over the keys, so that more, smaller calls share out the threads' work
// (one call per KV head left a thread idle for up to a head's time at each layer's end). Part p
// of `parts` covers keys [DecodeSplitPoint(nk, parts, p), DecodeSplitPoint(nk, parts, p + 1)):
// whole 32-key tiles except the last part. Needs nk >= 32 * parts (every part non-empty).
int64_t DecodeSplitPoint(int64_t nk, int64_t parts, int64_t p);
// The arguments of part p of `a` (FillsLse(a), every key visible to every row: causal_offset < 0):
// its keys, values and valid flags, output rows at `out` (row stride hd), log-sum-exps at `lse`.
// Throws plm::Error(kInvalidArgument) when `a` is not such a call, p is not in [0, parts) or a
// part would have fewer than 32 keys.
AttentionArgs DecodePart(const AttentionArgs& a, int64_t parts, int64_t p, float* out, float* lse);
// out[r] = the attention over all the parts' keys, from the parts' outputs part_out[p] (rows x hd,
// row stride hd; out may be part_out[0] when out_stride == hd), log-sum-exps part_lse[p] and key
// counts part_keys[p]. Rows with no visible key in any part attend uniformly to all keys, as one
// call would. Throws plm::Error(kInvalidArgument) unless 1 <= parts <= 16, or when every part
// has 0 keys.
void MergeAttentionParts(int64_t parts, const float* const* part_out, const float* const* part_lse,
                         const int64_t* part_keys, int64_t rows, int64_t hd, float* out,
                         int64_t out_stride);

// kt[d * nk + j] = k[j * stride + d] for j < nk, d < hd.
void TransposeKeys(const float* k, int64_t stride, int64_t nk, int64_t hd, float* kt);

// exp(x) to ~2 ulp, vectorisable.
void ExpInPlace(float* x, int64_t n);
// GELU (erf form) with a rational erf approximation (4.5e-7 absolute error in f32), vectorisable.
void GeluFastInPlace(float* x, int64_t n);
// SiLU x * sigmoid(x) with ExpApprox, vectorisable.
void SiluFastInPlace(float* x, int64_t n);
// GELU split over the OpenMP threads for large n.
void ParallelGeluFast(float* x, int64_t n);
// g = SiLU(g) * u with the approximate SiLU (the Llama MLP's gate), split likewise.
void ParallelSiluMulFast(float* g, const float* u, int64_t n);

}  // namespace plm
