#include "core/dequant_gemm.h"

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"
#include "core/scratch.h"

namespace plm {

namespace {

// The activations as the decode kernels of each format see them, so that a row's result does not
// depend on how many rows go with it: bf16 values for bf16 weights, per-row int8
// (QuantizeActivationRows) times its scale for q8 and q4.
enum class Act { kBf16, kInt8 };

// q * s back to f32 (what the int8 kernels multiply, exactly representable).
__attribute__((target_clones("arch=x86-64-v3", "default"))) void WidenInt8(const int8_t* q,
                                                                           int64_t k, float s,
                                                                           float* o) {
  for (int64_t j = 0; j < k; ++j) o[j] = static_cast<float>(q[j]) * s;
}

void PrepareActivations(const float* x, int64_t b, int64_t e, int64_t k, Act act, float* out) {
  thread_local std::vector<int8_t> row;
  int8_t* q = act == Act::kInt8 ? GrowScratch(row, static_cast<size_t>(k)) : nullptr;
  for (int64_t i = b; i < e; ++i) {
    const float* xi = x + i * k;
    float* o = out + i * k;
    if (act == Act::kBf16) {
      for (int64_t j = 0; j < k; ++j) o[j] = Bf16ToF32(F32ToBf16(xi[j]));
      continue;
    }
    float s = 1.0f;
    QuantizeActivationRows(xi, 1, k, q, &s);
    WidenInt8(q, k, s, o);
  }
}

// y = x W^T (+ bias, epilogue) with W produced rows [r0, r1) at a time by dequant(r0, r1, out):
// per chunk of at most 1536 activation rows (prepared as `act` says), panels of
// ~8 MB of f32 W (1024 rows at k = 2048) made on the OpenMP team, multiplied by oneDNN on the same
// team (GemmF32Omp), the panel's values then finished into y. (OpenBLAS's sgemm is as fast alone,
// but its own threads and the OpenMP team that makes the panels took the 2 cores from each other:
// 62-105 GFLOP/s against 150-160 with oneDNN on a Zen 2, gemm_bench at m = 512 and 1025.)
template <typename Dequant>
void GemmViaF32(const float* x, int64_t m, int64_t n, int64_t k, const Dequant& dequant,
                const float* bias, const GemmEpilogue& ep, float* y, Act act) {
  if (m <= 0 || n <= 0) return;
  constexpr int64_t kChunk = 1536;
  const int64_t panel = std::min(n, std::max<int64_t>(64, (int64_t{8} << 20) / (4 * k)));
  const int64_t chunk = std::min(m, kChunk);
  thread_local std::vector<float> wf, vf, xf;
  float* w = GrowScratch(wf, static_cast<size_t>(panel * k));
  float* v = GrowScratch(vf, static_cast<size_t>(chunk * panel));
  float* xr = GrowScratch(xf, static_cast<size_t>(chunk * k));
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t mm = std::min(chunk, m - i0);
    ParallelForOmp(mm,
                   [&](int64_t b, int64_t e) { PrepareActivations(x + i0 * k, b, e, k, act, xr); });
    const float* xa = xr;
    float* yc = y + i0 * n;
    for (int64_t r0 = 0; r0 < n; r0 += panel) {
      const int64_t np = std::min(panel, n - r0);
      ParallelForOmp(np, [&](int64_t b, int64_t e) { dequant(r0 + b, r0 + e, w + b * k); });
      GemmF32Omp(xa, w, nullptr, v, mm, np, k);
      GemmEpilogue pe = ep;  // this panel's columns
      if (pe.gamma != nullptr) pe.gamma += r0;
      const float* pb = bias != nullptr ? bias + r0 : nullptr;
      ParallelForOmp(
          mm, [&](int64_t b, int64_t e) { FinishRows(v, np, yc + r0, n, b, e, np, pb, pe); });
    }
  }
}

}  // namespace

__attribute__((target_clones("arch=x86-64-v3", "default"))) void DequantizeBf16Rows(
    const uint16_t* w, int64_t k, int64_t r0, int64_t r1, float* out) {
  const uint16_t* src = w + r0 * k;
  for (int64_t i = 0; i < (r1 - r0) * k; ++i) out[i] = Bf16ToF32(src[i]);
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void DequantizeQ8Rows(const Q8Matrix& w,
                                                                                  int64_t r0,
                                                                                  int64_t r1,
                                                                                  float* out) {
  const int64_t k = w.k;
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* q = w.q + r * k;
    const float s = w.scale[r];
    float* o = out + (r - r0) * k;
    for (int64_t j = 0; j < k; ++j) o[j] = static_cast<float>(q[j]) * s;
  }
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void DequantizeQ4Rows(const Q4Matrix& w,
                                                                                  int64_t r0,
                                                                                  int64_t r1,
                                                                                  float* out) {
  const int64_t k = w.k, nb = k / kQ4Block;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = w.q + r * (k / 2);
    float* o = out + (r - r0) * k;
    for (int64_t g = 0; g < k / 64; ++g) {
      // Byte j of a 64-value group: value j in the low nibble, value 32 + j in the high one.
      const float s0 = F16ToF32(w.scale[r * nb + 2 * g]),
                  s1 = F16ToF32(w.scale[r * nb + 2 * g + 1]);
      const uint8_t* b = q + g * 32;
      for (int64_t j = 0; j < 32; ++j) {
        o[g * 64 + j] = static_cast<float>((b[j] & 0x0f) - 8) * s0;
        o[g * 64 + 32 + j] = static_cast<float>((b[j] >> 4) - 8) * s1;
      }
    }
  }
}

void GemmBf16ViaF32(const float* x, const uint16_t* w, const float* bias, float* y, int64_t m,
                    int64_t n, int64_t k) {
  GemmViaF32(
      x, m, n, k,
      [&](int64_t r0, int64_t r1, float* out) { DequantizeBf16Rows(w, k, r0, r1, out); }, bias,
      GemmEpilogue{}, y, Act::kBf16);
}

void GemmQ8ViaF32(const float* x, const Q8Matrix& w, const float* bias, float* y, int64_t m,
                  const GemmEpilogue& ep) {
  GemmViaF32(
      x, m, w.n, w.k, [&](int64_t r0, int64_t r1, float* out) { DequantizeQ8Rows(w, r0, r1, out); },
      bias, ep, y, Act::kInt8);
}

void GemmQ4ViaF32(const float* x, const Q4Matrix& w, const float* bias, float* y, int64_t m,
                  const GemmEpilogue& ep) {
  GemmViaF32(
      x, m, w.n, w.k, [&](int64_t r0, int64_t r1, float* out) { DequantizeQ4Rows(w, r0, r1, out); },
      bias, ep, y, Act::kInt8);
}

}  // namespace plm
