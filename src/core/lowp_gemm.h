// Reduced-precision GEMMs for Linear layers: y[m, n] = x[m, k] · W[n, k]^T (+ bias), float32
// activations in and out, float32 accumulation.
//
//   bf16: W in bf16 (used in place from the checkpoint mapping when it is stored as bf16).
//         m >= kSmallM: oneDNN matmul (AVX512-BF16 brgemm); small m (decode): our own
//         AVX512-BF16 dot-product kernel, memory-bound. Without AVX512-BF16 both fall back to
//         converting W panels to f32 (AVX2/FMA via OpenBLAS).
//   q8:   W int8, one scale per output row (symmetric); x quantized per row to int8 on the fly.
//         Large m: oneDNN s8·s8→s32 matmul then rescale; small m: our own VNNI kernel.
//   q4:   W 4-bit in blocks of 32 with an f32 scale per block; small m: VNNI kernel that unpacks
//         nibbles in registers; large m: the matrix is expanded once at load into per-row int8
//         (an extra rounding, documented) and goes through the q8 GEMM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace plm {

inline constexpr int64_t kSmallM = 8;

// y = x W^T + b with W bf16 [n, k].
void GemmBF16(const float* x, const uint16_t* w, const float* bias, float* y, int64_t m, int64_t n,
              int64_t k);

struct Q8Matrix {
  int64_t n = 0, k = 0;
  std::vector<int8_t> q;     // [n, k]
  std::vector<float> scale;  // [n]
  std::vector<int32_t> sum;  // [n]: sum of q over the row (VNNI u8 offset compensation)
  size_t bytes() const { return q.size() + scale.size() * 4 + sum.size() * 4; }
};

// Quantizes a float32 [n, k] matrix (rows given by `row(i, dst)` to avoid a full f32 copy).
Q8Matrix QuantizeQ8(const float* w, int64_t n, int64_t k);
void FinishQ8(Q8Matrix* m);  // recomputes `sum` from q
void GemmQ8(const float* x, const Q8Matrix& w, const float* bias, float* y, int64_t m);

inline constexpr int64_t kQ4Block = 32;
struct Q4Matrix {
  int64_t n = 0, k = 0;  // k % 64 == 0
  // Per row, per group of 64 values: 32 bytes, byte j = (q[j] + 8) | (q[j + 32] + 8) << 4.
  std::vector<uint8_t> q;    // [n, k / 2]
  std::vector<float> scale;  // [n, k / 32]
  std::vector<float> comp;   // [n]: 128 * sum over blocks of scale * sum(q) (u8 offset)
  Q8Matrix expanded;         // per-row int8 re-quantization for large-m GEMMs
  size_t bytes() const { return q.size() + scale.size() * 4 + comp.size() * 4; }
};
Q4Matrix QuantizeQ4(const float* w, int64_t n, int64_t k);
void GemmQ4(const float* x, const Q4Matrix& w, const float* bias, float* y, int64_t m);
// Dequantized value of one weight (tests, slow).
float Q4Value(const Q4Matrix& w, int64_t row, int64_t col);

// Keeps oneDNN's (OpenMP) thread count equal to ThreadPool::Global(); called by the GEMMs.
void SyncGemmThreads();

}  // namespace plm
