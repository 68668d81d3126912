// Reduced-precision GEMMs for Linear layers: y[m, n] = x[m, k] · W[n, k]^T (+ bias), float32
// activations in and out, float32 accumulation.
//
//   bf16: W in bf16. Rows (in place from the checkpoint mapping): oneDNN matmul for m > kSmallM,
//         our AVX512-BF16 dot-product kernel for decode. Packed (PackBf16, what the models use
//         on AVX512-BF16 CPUs): oneDNN's blocked layout for both.
//   q8:   W int8, one scale per output row (symmetric); x quantized per row to int8 on the fly.
//         Packed (PackQ8, what the models use on AVX512-VNNI CPUs): our own VNNI kernels for
//         every m (many rows: 6 x 64 register tiles over 256-input pieces of W held in L1, the
//         rescale and epilogue from L2; bit for bit what oneDNN's u8·s8→s32 matmul and the
//         rescale give, ~5-15 % faster). Rows: oneDNN then rescale for large m, VNNI for small.
//   q4:   W 4-bit in blocks of 32 with an f16 scale per block. Packed (PackQ4): one VNNI kernel
//         for every m. Rows: small m unpacks nibbles in registers; large m expands panels of W
//         on the fly into per-row int8 (an extra rounding, documented) for the int8 GEMM.
//
// Without the AVX-512 kernels, CPUs with AVX2, FMA and F16C run decode-sized products (m <=
// kSmallM) on the plain rows of every format with core/gemv_avx2.h; larger m (every CPU without
// the AVX-512 kernels) through f32 panels of W: core/dequant_gemm.h.
//
// The small-m kernels (m <= kSmallM) work on register tiles of a few weight rows (or 64-output
// blocks) x up to 8 activation rows, so each weight is read from memory once per call whatever
// m is (a batched decode step costs about one weight read where the weights stream from DRAM).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "plm/huge_page_allocator.h"

namespace plm {

inline constexpr int64_t kSmallM = 8;

// What a GEMM does with each output row v = x W^T + b: store it (kStore), store GeluFast(v)
// (kGelu), or add it scaled into y: y += gamma * v (kAddScaled, a LayerScale residual; gamma
// null = 1). The int8 GEMMs for large m do it in their rescaling pass, so the output is written
// once instead of once per step (rescale, bias, activation, residual).
struct GemmEpilogue {
  enum class Kind { kStore, kGelu, kAddScaled };
  Kind kind = Kind::kStore;
  const float* gamma = nullptr;  // [n], kAddScaled only
};
// Applies `ep` to rows [b, e) of values v (row stride nv) into y (row stride ny), columns
// [0, n) with `bias` (may be null). v may equal y (same strides) except for kAddScaled.
void FinishRows(const float* v, int64_t nv, float* y, int64_t ny, int64_t b, int64_t e, int64_t n,
                const float* bias, const GemmEpilogue& ep);

// y = x W^T + b in float32 through oneDNN on the OpenMP team the other GEMMs use (GemmF32 =
// OpenBLAS otherwise: its own worker threads keep polling with sched_yield after each call and
// take CPU time from the OpenMP threads that run next).
void GemmF32Omp(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n,
                int64_t k);

// bf16 weights in oneDNN's blocked BA16a64b2a layout of W^T (per 64 outputs, per 2 inputs, 64 x 2
// values; k padded to 32, n to 64): its brgemm reads it faster than rows for many rows, and the
// decode kernel streams it front to back. PackBf16 copies w [n, k] into it (null without
// AVX512-BF16 or where oneDNN takes no such layout).
// Bf16BlockedBytes: the layout's size; BlockBf16Rows: output blocks [b0, b1) of w [n, k] into
// `out` (the whole blocked array); UnblockBf16: back to rows. UseBlockedBf16: blocked weights
// kept by the caller (a mapped checkpoint written by `plm quantize --dtype bf16`; 64-byte
// aligned), used in place (null where PackBf16 would give null).
struct PackedBf16;
std::shared_ptr<const PackedBf16> PackBf16(const uint16_t* w, int64_t n, int64_t k);
int64_t Bf16BlockedBytes(int64_t n, int64_t k);
void BlockBf16Rows(const uint16_t* w, int64_t n, int64_t k, int64_t b0, int64_t b1, uint16_t* out);
void UnblockBf16(const uint16_t* blocked, int64_t n, int64_t k, uint16_t* w);
std::shared_ptr<const PackedBf16> UseBlockedBf16(const uint16_t* blocked, int64_t n, int64_t k);
size_t PackedBf16Bytes(const PackedBf16& w);
size_t PackedBf16OwnedBytes(const PackedBf16& w);  // 0 when used in place from a mapping
void GemmBF16Packed(const float* x, const PackedBf16& w, const float* bias, float* y, int64_t m);

// y = x W^T + b with W bf16 [n, k].
void GemmBF16(const float* x, const uint16_t* w, const float* bias, float* y, int64_t m, int64_t n,
              int64_t k);

// Weight arrays a matrix owns (built at load): in huge pages where large, since decode streams
// them every token (the AVX2 kernels read q8/q4 rows rebuilt at load in place: 4 KB pages there
// read the 1B's short rows at ~0.8 of the probe, docs/PERFORMANCE.md session 22).
template <typename T>
using WeightVector = std::vector<T, HugePageAllocator<T>>;

// A Q8Matrix's weights reordered once into a blocked layout that oneDNN's int8 GEMMs read ~20 %
// faster than plain rows and the decode kernel streams front to back (defined in lowp_gemm.cc).
struct PackedS8;

// int8 weights, one f32 scale per output row (symmetric). The arrays are either owned (built by
// QuantizeQ8) or borrowed from a mapped quantized checkpoint; moving keeps the pointers valid.
struct Q8Matrix {
  int64_t n = 0, k = 0;
  const int8_t* q = nullptr;     // [n, k]
  const float* scale = nullptr;  // [n]
  const int32_t* sum = nullptr;  // [n]: sum of q over the row (VNNI u8 offset compensation)
  WeightVector<int8_t> q_own;
  std::vector<float> scale_own;
  std::vector<int32_t> sum_own;
  // Set by PackQ8: every GEMM then runs on the blocked weights and q is null (the plain rows are
  // dropped).
  std::shared_ptr<const PackedS8> packed;

  Q8Matrix() = default;
  Q8Matrix(const Q8Matrix&) = delete;
  Q8Matrix& operator=(const Q8Matrix&) = delete;
  Q8Matrix(Q8Matrix&&) = default;
  Q8Matrix& operator=(Q8Matrix&&) = default;
  // Allocates owned arrays for n x k and points at them.
  void Allocate(int64_t rows, int64_t cols);
  size_t bytes() const;
  // Bytes of the arrays this matrix owns (built at load; the rest are borrowed from a mapping).
  size_t owned_bytes() const;
};

// Per-row symmetric int8 quantization of activations, as every int8 path feeds its kernels:
// q = round(x / s) in [-127, 127] (to nearest even), s = max|x| / 127 (1 for an all-zero row).
void QuantizeActivationRows(const float* x, int64_t m, int64_t k, int8_t* q, float* s);

// Quantizes rows of a float32 [rows, k] matrix into q/scale/sum (one row at a time, so callers
// can quantize a large matrix chunk by chunk).
void QuantizeQ8Rows(const float* w, int64_t rows, int64_t k, int8_t* q, float* scale, int32_t* sum);
Q8Matrix QuantizeQ8(const float* w, int64_t n, int64_t k);
void GemmQ8(const float* x, const Q8Matrix& w, const float* bias, float* y, int64_t m,
            const GemmEpilogue& ep = {});
// Writes rows [b, e) of a GEMM's input (k floats each, consecutive) at `out`.
using RowMaker = std::function<void(int64_t b, int64_t e, float* out)>;
// Whether GemmQ8Made makes the rows itself (packed weights, m above the decode sizes): each thread
// then makes a few rows at a time and quantizes them while they are in L1, so the float32 input
// never goes to memory (a LayerNorm fused into the next GEMM's quantization).
bool GemmQ8MakesRows(const Q8Matrix& w, int64_t m);
// GemmQ8 of the rows `make` writes, where GemmQ8MakesRows; the same result as GemmQ8 of them.
void GemmQ8Made(const RowMaker& make, const Q8Matrix& w, const float* bias, float* y, int64_t m,
                const GemmEpilogue& ep = {});
// The blocked layout of int8 weights (what oneDNN calls BA16a64b4a of W^T): per block of 64
// outputs, per group of 4 inputs, 64 x 4 bytes (output j's inputs 4g..4g+3 at byte 4j: one
// vpdpbusd operand per 16 outputs); k and n padded with zeros to multiples of 64. A decode step
// streams it front to back; many rows go through our blocked VNNI kernel (no oneDNN).
// Q8BlockedBytes: its size; BlockQ8Rows: output blocks [b0, b1) of q [n, k] into `out` (the whole
// blocked array); UnblockQ8: back to rows.
int64_t Q8BlockedBytes(int64_t n, int64_t k);
void BlockQ8Rows(const int8_t* q, int64_t n, int64_t k, int64_t b0, int64_t b1, int8_t* out);
void UnblockQ8(const int8_t* blocked, int64_t n, int64_t k, int8_t* q);
// Packs w's rows into the blocked layout, then drops the owned plain rows and sets w->q to null
// (rows borrowed from a mapping are the caller's to release). Returns false and leaves w
// unchanged where the layout is not usable.
bool PackQ8(Q8Matrix* w);
// Points w (scale and sum set, rows not needed) at blocked weights kept by the caller (a mapped
// checkpoint; 64-byte aligned). Returns false (w unchanged) where the layout is not usable.
bool UseBlockedQ8(Q8Matrix* w, const int8_t* blocked);

// 4-bit weights in blocks of 32 values with an f16 scale per block (ggml Q4_0-like: value = q *
// scale, q in [-8, 7]); k % 64 == 0. Packed (PackQ4): one kernel for every m. As rows: decode
// (small m) unpacks nibbles in registers; large m expands panels of rows to per-row int8 on the
// fly (an extra rounding, documented) and runs the int8 GEMM, so no int8 copy is kept.
inline constexpr int64_t kQ4Block = 32;
struct PackedQ4;  // the blocked layout of PackQ4 (lowp_gemm.cc)
struct Q4Matrix {
  int64_t n = 0, k = 0;
  // Per row, per group of 64 values: 32 bytes, byte j = (q[j] + 8) | (q[j + 32] + 8) << 4.
  const uint8_t* q = nullptr;       // [n, k / 2]
  const uint16_t* scale = nullptr;  // [n, k / 32] IEEE half
  const float* comp = nullptr;      // [n]: 128 * sum over blocks of scale * sum(q) (u8 offset)
  WeightVector<uint8_t> q_own;
  std::vector<uint16_t> scale_own;
  std::vector<float> comp_own;
  // Set by PackQ4: the weights in a blocked layout (per 64 outputs and 32 inputs: the scales,
  // then the nibbles in vpdpbusd order), one sequential stream for decode; q and scale are then
  // null (comp is kept).
  std::shared_ptr<const PackedQ4> packed;

  Q4Matrix() = default;
  Q4Matrix(const Q4Matrix&) = delete;
  Q4Matrix& operator=(const Q4Matrix&) = delete;
  Q4Matrix(Q4Matrix&&) = default;
  Q4Matrix& operator=(Q4Matrix&&) = default;
  void Allocate(int64_t rows, int64_t cols);
  size_t bytes() const { return static_cast<size_t>(n * k / 2 + n * (k / kQ4Block) * 2 + n * 4); }
  size_t owned_bytes() const;  // as Q8Matrix::owned_bytes
};
void QuantizeQ4Rows(const float* w, int64_t rows, int64_t k, uint8_t* q, uint16_t* scale,
                    float* comp);
Q4Matrix QuantizeQ4(const float* w, int64_t n, int64_t k);
void GemmQ4(const float* x, const Q4Matrix& w, const float* bias, float* y, int64_t m,
            const GemmEpilogue& ep = {});
// The blocked q4 layout: per block of 64 outputs (n padded with zeros), per block of 32 inputs,
// 1152 bytes: the 64 outputs' f16 scales, then 4 groups of 8 inputs x 4 chunks of 16 outputs x
// 64 bytes, output o's bytes t = 0..3 holding q[o][8g + t] + 8 (low nibble) and q[o][8g + 4 + t]
// + 8 (high nibble): the vpdpbusd operand order. Q4BlockedBytes: its size; BlockQ4: w's rows
// into `out`; UnblockQ4: back to rows (q [n, k / 2], scale [n, k / 32]).
int64_t Q4BlockedBytes(int64_t n, int64_t k);
void BlockQ4(const Q4Matrix& w, uint8_t* out);
void UnblockQ4(const uint8_t* blocked, int64_t n, int64_t k, uint8_t* q, uint16_t* scale);
// Reorders w into the blocked layout and drops its owned rows (rows borrowed from a mapping are
// the caller's to release). Returns false (w unchanged) without AVX512-VNNI.
bool PackQ4(Q4Matrix* w);
// Points w (n, k and comp set) at blocked weights kept by the caller (a mapped checkpoint).
// Returns false (w unchanged) without AVX512-VNNI.
bool UseBlockedQ4(Q4Matrix* w, const uint8_t* blocked);
// Dequantized value of one weight (tests, slow; rows only).
float Q4Value(const Q4Matrix& w, int64_t row, int64_t col);
// Rows [r0, r1) of a q4 matrix as per-row int8 (what the large-m path multiplies): q [rows, k],
// scale [rows]. Exposed for tests.
void ExpandQ4Rows(const Q4Matrix& w, int64_t r0, int64_t r1, int8_t* q, float* scale);

// Several small-m products over the same input x [m, k] (m <= kSmallM; q/k/v or gate/up of a
// decode step) in one parallel pass over all their weight rows: the input is converted once and
// the threads meet once. Every job must have the same format (one of bf16 / bf16p / q8 / q4 set).
struct GemvJob {
  const uint16_t* bf16 = nullptr;  // [n, k]
  const PackedBf16* bf16p = nullptr;
  const Q8Matrix* q8 = nullptr;
  const Q4Matrix* q4 = nullptr;
  int64_t n = 0;
  const float* bias = nullptr;
  float* y = nullptr;  // [m, n]
};
// Returns false (doing nothing) when the fused path does not apply (neither the AVX-512 nor the
// AVX2 kernels, m too large, mixed formats); the caller then runs the GEMMs one by one.
bool GemvMany(const float* x, int64_t m, int64_t k, const std::vector<GemvJob>& jobs);

// Keeps oneDNN's (OpenMP) thread count equal to ThreadPool::Global(); called by the GEMMs.
void SyncGemmThreads();

}  // namespace plm
