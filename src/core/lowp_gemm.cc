#include "core/lowp_gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>

#include "core/attention.h"
#include "core/cpu_features.h"
#include "core/dequant_gemm.h"
#include "core/dtype.h"
#include "core/gemm_q4_avx2.h"
#include "core/gemv_avx2.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/scratch.h"
#include "core/simd.h"
#include "core/stream_prefetch.h"
#include "core/thread_pool.h"
#include "plm/error.h"
#include "plm/huge_page_allocator.h"

extern "C" void omp_set_num_threads(int);

namespace plm {

namespace {

constexpr int64_t kRowBlock = 16;  // W rows per parallel task in the small-m kernels
// The blocked decode GEMVs hand out 64-row weight blocks one at a time (ParallelFor's grain):
// each is 32-300 KB of weights, so the threads finish a projection within one block of each
// other (the default grain of 1/32 of the blocks left up to ~15 us of waiting on the 1B's
// gate/up pass; paired measurement in docs/PERFORMANCE.md, session 11).
constexpr int64_t kBlockGrain = 1;
constexpr int64_t kChunkM = 1536;  // at most this many activation rows per oneDNN call

// Rows per oneDNN call: m split evenly into ceil(m / kChunkM) chunks (a 1025-row vision tile is
// one call, not 1024 + a 1-row remainder).
int64_t ChunkRows(int64_t m) {
  const int64_t chunks = (m + kChunkM - 1) / kChunkM;
  return (m + chunks - 1) / chunks;
}

// ---------------------------------------------------------------------------------------------
// oneDNN matmuls, cached per shape.

// kS8: s8 activations; kU8: u8 activations (q + 128, the native VNNI order); s8 weights for
// both. kF32Blocked: f32 weights in oneDNN's BA16a64b (bf16 blocked weights widened per panel).
enum class MmKind { kBF16, kS8, kU8, kF32, kBF16Blocked, kF32Blocked };

struct Dnnl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  std::mutex mu;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t>, dnnl::matmul> cache;
  bool ok[7] = {true, true, true, true, true, true, true};

  bool& Ok(MmKind kind) { return ok[static_cast<int>(kind)]; }

  static dnnl::memory::data_type Src(MmKind kind) {
    using dt = dnnl::memory::data_type;
    if (kind == MmKind::kF32 || kind == MmKind::kF32Blocked) return dt::f32;
    if (kind == MmKind::kBF16Blocked) return dt::bf16;
    return kind == MmKind::kBF16 ? dt::bf16 : kind == MmKind::kS8 ? dt::s8 : dt::u8;
  }
  // W^T as oneDNN sees it: [k, n], plain rows (`ba`) or the blocked layout.
  static dnnl::memory::desc Weights(MmKind kind, int64_t n, int64_t k) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    if (kind == MmKind::kBF16Blocked) return dnnl::memory::desc({k, n}, dt::bf16, tag::BA16a64b2a);
    if (kind == MmKind::kF32Blocked) return dnnl::memory::desc({k, n}, dt::f32, tag::BA16a64b);
    return dnnl::memory::desc({k, n},
                              kind == MmKind::kF32    ? Src(kind)
                              : kind == MmKind::kBF16 ? dt::bf16
                                                      : dt::s8,
                              tag::ba);
  }

  static Dnnl& Get() {
    static Dnnl d;
    return d;
  }

  // Returns false when oneDNN has no implementation (then the caller falls back).
  // ldc: row stride of the output (>= n; a column slice of a wider output when larger).
  bool Find(MmKind kind, int64_t m, int64_t n, int64_t k, dnnl::matmul* out, int64_t ldc = 0) {
    if (ldc == 0) ldc = n;
    std::lock_guard<std::mutex> lock(mu);
    if (!Ok(kind)) return false;
    auto key = std::make_tuple(static_cast<int>(kind), m, n, k, ldc);
    auto it = cache.find(key);
    if (it != cache.end()) {
      *out = it->second;
      return true;
    }
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt o = kind == MmKind::kS8 || kind == MmKind::kU8 ? dt::s32 : dt::f32;
    try {
      dnnl::memory::desc a({m, k}, Src(kind), tag::ab), b = Weights(kind, n, k),
                                                        c({m, n}, o, {ldc, 1});
      // The caller passes the scratchpad (reused per thread; oneDNN's own is allocated per run).
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, eng);
      const std::string impl = pd.impl_info_str();
      // Reference / gemm-based fallbacks are far slower than converting to f32 ourselves.
      if (impl.find("ref") != std::string::npos) throw std::runtime_error(impl);
      dnnl::matmul mm(pd);
      cache.emplace(key, mm);
      *out = mm;
      return true;
    } catch (const std::exception&) {
      Ok(kind) = false;
      return false;
    }
  }

  // Find for the blocked layouts, which have no fallback: a missing matmul is an internal error.
  dnnl::matmul Blocked(MmKind kind, int64_t m, int64_t n, int64_t k, const char* what) {
    dnnl::matmul mm;
    if (!Find(kind, m, n, k, &mm))
      throw Error(ErrorCode::kInternal, std::string("oneDNN has no ") + what + " matmul of " +
                                            std::to_string(m) + " rows for blocked weights");
    return mm;
  }

  void Run(const dnnl::matmul& mm, MmKind kind, int64_t m, int64_t n, int64_t k, const void* a,
           const void* b, void* c, int64_t ldc = 0) {
    if (ldc == 0) ldc = n;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt o = kind == MmKind::kS8 || kind == MmKind::kU8 ? dt::s32 : dt::f32;
    dnnl::memory am({{m, k}, Src(kind), tag::ab}, eng, const_cast<void*>(a));
    dnnl::memory bm(Weights(kind, n, k), eng, const_cast<void*>(b));
    dnnl::memory cm({{m, n}, o, {ldc, 1}}, eng, c);
    Run(mm, am, bm, cm);
  }

  void Run(const dnnl::matmul& mm, const dnnl::memory& am, const dnnl::memory& bm,
           const dnnl::memory& cm) {
    const dnnl::memory::desc sd(
        *dnnl_primitive_desc_query_md(mm.get_primitive_desc(), dnnl_query_scratchpad_md, 0));
    thread_local std::unique_ptr<uint8_t[]> scratch;
    thread_local size_t scratch_size = 0;
    if (sd.get_size() > scratch_size) {
      scratch_size = sd.get_size();
      scratch.reset(new uint8_t[scratch_size]);
    }
    dnnl::memory sm(sd, eng, scratch.get());
    dnnl::stream s(eng);
    mm.execute(s, {{DNNL_ARG_SRC, am},
                   {DNNL_ARG_WEIGHTS, bm},
                   {DNNL_ARG_DST, cm},
                   {DNNL_ARG_SCRATCHPAD, sm}});
    s.wait();
  }
};

void AddBias(float* y, const float* bias, int64_t m, int64_t n) {
  if (bias == nullptr) return;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[j];
}

// The same over row ranges on the OpenMP team (after a oneDNN GEMM of many rows).
void AddBiasParallel(float* y, const float* bias, int64_t m, int64_t n) {
  if (bias == nullptr) return;
  ParallelForOmp(m, [&](int64_t b, int64_t e) { AddBias(y + b * n, bias, e - b, n); });
}

}  // namespace

// The blocked layout (oneDNN's BA16a64b4a for W^T [k, n]): per block of 64 outputs, per group
// of 4 inputs, 64 x 4 bytes (output-major, 4 consecutive inputs per output: one vpdpbusd operand
// per 16 outputs); k and n padded with zeros to multiples of 64. Our kernels read it: a decode
// step streams it front to back (GemvQ8Blocked), many rows go over it in L1-sized pieces
// (GemmQ8BlockedRows). Activations go in as u8 = q + 128 (the native VNNI order); 128 * sum(w
// row) comes off in the rescale.
// Owned packed weights: decode streams them whole every token, so they live in huge pages
// (plm/huge_page_allocator.h; 64-byte aligned at any size).
template <typename T>
struct LargeFree {
  size_t bytes = 0;
  void operator()(T* p) const noexcept { FreeLarge(p, bytes); }
};
template <typename T>
using LargeBuffer = std::unique_ptr<T, LargeFree<T>>;
template <typename T>
LargeBuffer<T> NewLargeBuffer(size_t bytes) {
  return LargeBuffer<T>(static_cast<T*>(AllocateLarge(bytes)), LargeFree<T>{bytes});
}

struct PackedS8 {
  int64_t n = 0, k = 0, np = 0, kp = 0;  // sizes and padded sizes
  const int8_t* data = nullptr;          // np * kp bytes, 64-byte aligned
  LargeBuffer<int8_t> owned;
};

size_t Q8Matrix::bytes() const {
  return (packed ? static_cast<size_t>(packed->np * packed->kp) : static_cast<size_t>(n * k)) +
         static_cast<size_t>(n * 8);
}

size_t Q8Matrix::owned_bytes() const {
  return q_own.size() + (scale_own.size() + sum_own.size()) * 4 +
         (packed ? packed->owned.get_deleter().bytes : 0);
}

int64_t Q8BlockedBytes(int64_t n, int64_t k) {
  return (n + 63) / 64 * 64 * ((k + 63) / 64 * 64);
}

namespace {

// oneDNN's BA16a64b{G}a layouts of W^T (G = 4 for int8, 2 for bf16): per 64 outputs, per G
// inputs, 64 x G values; n padded to 64 and k to kp with zeros. BlockRowsBA64: output blocks
// [b0, b1) of rows w [n, k] into `out` (the whole blocked array); UnblockRowsBA64: back to rows.
template <typename T, int G>
void BlockRowsBA64(const T* w, int64_t n, int64_t k, int64_t kp, int64_t b0, int64_t b1, T* out) {
  for (int64_t b = b0; b < b1; ++b) {
    T* ob = out + b * 64 * kp;
    std::memset(ob, 0, sizeof(T) * static_cast<size_t>(64 * kp));  // padding
    for (int64_t j = 0; j < 64 && b * 64 + j < n; ++j) {
      const T* row = w + (b * 64 + j) * k;
      int64_t g = 0;
      for (; G * g + G <= k; ++g) std::memcpy(ob + (g * 64 + j) * G, row + G * g, sizeof(T) * G);
      for (int64_t c = G * g; c < k; ++c) ob[(g * 64 + j) * G + c % G] = row[c];
    }
  }
}

template <typename T, int G>
void UnblockRowsBA64(const T* blocked, int64_t n, int64_t k, int64_t kp, T* w) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      w[r * k + c] = blocked[(r / 64) * 64 * kp + ((c / G) * 64 + r % 64) * G + c % G];
}

}  // namespace

void BlockQ8Rows(const int8_t* q, int64_t n, int64_t k, int64_t b0, int64_t b1, int8_t* out) {
  BlockRowsBA64<int8_t, 4>(q, n, k, (k + 63) / 64 * 64, b0, b1, out);
}

void UnblockQ8(const int8_t* blocked, int64_t n, int64_t k, int8_t* q) {
  UnblockRowsBA64<int8_t, 4>(blocked, n, k, (k + 63) / 64 * 64, q);
}

namespace {

// Whether this CPU runs the kernels of the blocked int8 layout (AVX512-VNNI; not
// PLM_CPU=generic).
bool BlockedQ8Usable() {
  return Cpu().avx512_full();
}

// Points a Q8Matrix / Q4Matrix at blocked weights of layout Packed (owned: moved in; null when
// they belong to a mapping) and drops its plain rows.
template <typename Packed, typename Matrix, typename T>
void SetBlocked(Matrix* w, const T* blocked, LargeBuffer<T> owned, int64_t k_align) {
  auto p = std::make_shared<Packed>();
  p->n = w->n;
  p->k = w->k;
  p->np = (w->n + 63) / 64 * 64;
  p->kp = (w->k + k_align - 1) / k_align * k_align;
  p->data = blocked;
  p->owned = std::move(owned);
  w->packed = std::move(p);
  w->q = nullptr;
  std::remove_reference_t<decltype(w->q_own)>().swap(w->q_own);
}

}  // namespace

bool UseBlockedQ8(Q8Matrix* w, const int8_t* blocked) {
  if (w->packed || !BlockedQ8Usable()) return false;
  if (reinterpret_cast<uintptr_t>(blocked) % 64 != 0)
    throw Error(ErrorCode::kInvalidArgument, "blocked int8 weights must be 64-byte aligned");
  SetBlocked<PackedS8>(w, blocked, LargeBuffer<int8_t>(), 64);
  return true;
}

bool PackQ8(Q8Matrix* w) {
  if (w->q == nullptr || w->packed || !BlockedQ8Usable()) return false;
  const int64_t n = w->n, k = w->k;
  auto owned = NewLargeBuffer<int8_t>(static_cast<size_t>(Q8BlockedBytes(n, k)));
  const int8_t* q = w->q;
  int8_t* out = owned.get();
  ParallelForOmp((n + 63) / 64, [&](int64_t b0, int64_t b1) { BlockQ8Rows(q, n, k, b0, b1, out); });
  SetBlocked<PackedS8>(w, out, std::move(owned), 64);
  return true;
}

// One vector of FinishRows: x W^T values v (lanes mk) plus bias, then stored (kStore, kGelu:
// the GELU is applied to whole rows afterwards) or added to y (kAddScaled: y + gamma (v + bias),
// one FMA; y + v + bias without gamma). Explicit about fusing, so that every kernel that finishes
// its outputs through it rounds the same way.
__attribute__((target("avx512f"), always_inline)) inline void FinishVector(__m512 v, __mmask16 mk,
                                                                           const float* bias,
                                                                           GemmEpilogue::Kind kind,
                                                                           const float* gamma,
                                                                           float* y) {
  if (bias != nullptr)  // never fused with the product before it
    v = _mm512_add_round_ps(v, _mm512_maskz_loadu_ps(mk, bias),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  if (kind == GemmEpilogue::Kind::kAddScaled) {
    const __m512 yv = _mm512_maskz_loadu_ps(mk, y);
    v = gamma != nullptr ? _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, gamma), v, yv)
                         : _mm512_add_ps(yv, v);
  }
  _mm512_mask_storeu_ps(y, mk, v);
}

namespace {

// FinishRows without AVX-512.
void FinishRowsScalar(const float* v, int64_t nv, float* y, int64_t ny, int64_t b, int64_t e,
                      int64_t n, const float* bias, const GemmEpilogue& ep) {
  for (int64_t i = b; i < e; ++i) {
    const float* vi = v + i * nv;
    float* yi = y + i * ny;
    if (ep.kind == GemmEpilogue::Kind::kAddScaled) {
      const float* g = ep.gamma;
      if (bias != nullptr && g != nullptr) {
        for (int64_t j = 0; j < n; ++j) yi[j] += g[j] * (vi[j] + bias[j]);
      } else if (g != nullptr) {
        for (int64_t j = 0; j < n; ++j) yi[j] += g[j] * vi[j];
      } else if (bias != nullptr) {
        for (int64_t j = 0; j < n; ++j) yi[j] += vi[j] + bias[j];
      } else {
        for (int64_t j = 0; j < n; ++j) yi[j] += vi[j];
      }
      continue;
    }
    if (bias != nullptr) {
      for (int64_t j = 0; j < n; ++j) yi[j] = vi[j] + bias[j];
    } else if (vi != yi) {
      for (int64_t j = 0; j < n; ++j) yi[j] = vi[j];
    }
    if (ep.kind == GemmEpilogue::Kind::kGelu) GeluFastInPlace(yi, n);
  }
}

__attribute__((target("avx512f"))) void FinishRowsAvx512(const float* v, int64_t nv, float* y,
                                                         int64_t ny, int64_t b, int64_t e,
                                                         int64_t n, const float* bias,
                                                         const GemmEpilogue& ep) {
  for (int64_t i = b; i < e; ++i) {
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mk = n - j >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (n - j)) - 1u);
      FinishVector(_mm512_maskz_loadu_ps(mk, v + i * nv + j), mk,
                   bias != nullptr ? bias + j : nullptr, ep.kind,
                   ep.gamma != nullptr ? ep.gamma + j : nullptr, y + i * ny + j);
    }
    if (ep.kind == GemmEpilogue::Kind::kGelu) GeluFastInPlace(y + i * ny, n);
  }
}

}  // namespace

void FinishRows(const float* v, int64_t nv, float* y, int64_t ny, int64_t b, int64_t e, int64_t n,
                const float* bias, const GemmEpilogue& ep) {
  if (Cpu().avx512f) return FinishRowsAvx512(v, nv, y, ny, b, e, n, bias, ep);
  FinishRowsScalar(v, nv, y, ny, b, e, n, bias, ep);
}

namespace {

// ---------------------------------------------------------------------------------------------
// Small-m kernels (decode, m <= kSmallM). A tile is R weight rows x M activation rows with R * M
// accumulators in registers: each weight vector is loaded once per tile and applied to the M
// activation rows, each activation vector to the R weight rows. m is split into groups of at most
// G rows (as even as possible); the R weight rows are re-read from L1/L2 for each group, so
// memory sees each weight once per call whatever m is.

#define PLM_AVX512 "avx512f,avx512bw,avx512dq,avx512vl"

// Software prefetch distance of the tiles, in tiles (of R weight rows).
constexpr int kAheadTiles = 1;

// Sums of a, b, c, d in lanes 0..3.
__attribute__((target(PLM_AVX512), always_inline)) inline __m128 Sum4(__m512 a, __m512 b, __m512 c,
                                                                      __m512 d) {
  const __m256 a2 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  const __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  const __m256 c2 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  const __m256 d2 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a2, b2), _mm256_hadd_ps(c2, d2));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

__attribute__((target(PLM_AVX512), always_inline)) inline __m128i Sum4(__m512i a, __m512i b,
                                                                       __m512i c, __m512i d) {
  const __m256i a2 = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti32x8_epi32(a, 1));
  const __m256i b2 = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti32x8_epi32(b, 1));
  const __m256i c2 = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti32x8_epi32(c, 1));
  const __m256i d2 = _mm256_add_epi32(_mm512_castsi512_si256(d), _mm512_extracti32x8_epi32(d, 1));
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a2, b2), _mm256_hadd_epi32(c2, d2));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// Lane rr of the result: the sum of acc[rr][i] (zero for rr >= R).
template <int R, int M, typename V>
__attribute__((target(PLM_AVX512), always_inline)) inline auto SumRows(const V (&acc)[R][M],
                                                                       int i) {
  static_assert(R >= 1 && R <= 4);
  V v[4];
  for (int rr = 0; rr < 4; ++rr) v[rr] = rr < R ? acc[rr < R ? rr : 0][i] : V{};
  return Sum4(v[0], v[1], v[2], v[3]);
}

// Splits m activation rows into groups of at most g rows, as even as possible (7 -> 4 + 3):
// for (RowGroups gr(m, g); gr.Next();) uses rows [gr.i0, gr.i0 + gr.size).
struct RowGroups {
  RowGroups(int64_t m, int64_t g) : m_(m), left_((m + g - 1) / g) {}
  bool Next() {
    i0 += size;
    if (left_ == 0) return false;
    size = (m_ - i0 + left_ - 1) / left_;
    --left_;
    return true;
  }
  int64_t i0 = 0, size = 0;

 private:
  int64_t m_, left_;
};

// Runs CALL(M) with the compile-time M equal to size (1 <= size <= G <= 8).
#define PLM_SWITCH_M(G, size, CALL)    \
  switch (size) {                      \
    case 1:                            \
      CALL(1);                         \
      break;                           \
    case 2:                            \
      if constexpr ((G) >= 2) CALL(2); \
      break;                           \
    case 3:                            \
      if constexpr ((G) >= 3) CALL(3); \
      break;                           \
    case 4:                            \
      if constexpr ((G) >= 4) CALL(4); \
      break;                           \
    case 5:                            \
      if constexpr ((G) >= 5) CALL(5); \
      break;                           \
    case 6:                            \
      if constexpr ((G) >= 6) CALL(6); \
      break;                           \
    case 7:                            \
      if constexpr ((G) >= 7) CALL(7); \
      break;                           \
    default:                           \
      if constexpr ((G) >= 8) CALL(8); \
      break;                           \
  }

// ---------------------------------------------------------------------------------------------
// bf16 kernels.

constexpr int kBf16Group = 4;  // activation rows per bf16 tile
constexpr int kBf16Rows = 4;   // weight rows per bf16 tile

// y[i0 + i, r + rr] for rr < R, i < M; any k (the tail is masked).
template <int R, int M>
__attribute__((target(PLM_AVX512 ",avx512bf16"), always_inline)) inline void Bf16Tile(
    const uint16_t* xb, const uint16_t* w, float* y, int64_t n, int64_t k, int64_t r, int64_t i0) {
  const uint16_t* wr = w + r * k;
  const uint16_t* xr = xb + i0 * k;
  __m512 acc[R][M];
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    __m512i wv[R];
    for (int rr = 0; rr < R; ++rr) {
      // The next tile's rows (the hardware prefetcher alone falls behind on DRAM streams).
      _mm_prefetch(reinterpret_cast<const char*>(wr + (kAheadTiles * R + rr) * k + j), _MM_HINT_T0);
      wv[rr] = _mm512_loadu_si512(wr + rr * k + j);
    }
    for (int i = 0; i < M; ++i) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(xr + i * k + j);
      for (int rr = 0; rr < R; ++rr)
        acc[rr][i] = _mm512_dpbf16_ps(acc[rr][i], xv, (__m512bh)wv[rr]);
    }
  }
  if (j < k) {
    const __mmask32 mk = (1u << (k - j)) - 1u;
    __m512i wv[R];
    for (int rr = 0; rr < R; ++rr) wv[rr] = _mm512_maskz_loadu_epi16(mk, wr + rr * k + j);
    for (int i = 0; i < M; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mk, xr + i * k + j);
      for (int rr = 0; rr < R; ++rr)
        acc[rr][i] = _mm512_dpbf16_ps(acc[rr][i], xv, (__m512bh)wv[rr]);
    }
  }
  const __mmask8 rm = static_cast<__mmask8>((1u << R) - 1u);
  for (int i = 0; i < M; ++i) _mm_mask_storeu_ps(y + (i0 + i) * n + r, rm, SumRows(acc, i));
}

template <int R>
__attribute__((target(PLM_AVX512 ",avx512bf16"))) void Bf16Rows(const uint16_t* xb,
                                                                const uint16_t* w, float* y,
                                                                int64_t m, int64_t n, int64_t k,
                                                                int64_t r) {
  static_assert(kBf16Group >= 1 && kBf16Group <= 8);
  for (RowGroups g(m, kBf16Group); g.Next();) {
#define PLM_CALL(M) Bf16Tile<R, M>(xb, w, y, n, k, r, g.i0)
    PLM_SWITCH_M(kBf16Group, g.size, PLM_CALL)
#undef PLM_CALL
  }
}

__attribute__((target(PLM_AVX512 ",avx512bf16"))) void GemvBf16Avx512(const uint16_t* xb,
                                                                      const uint16_t* w, float* y,
                                                                      int64_t m, int64_t n,
                                                                      int64_t k, int64_t r0,
                                                                      int64_t r1) {
  if (m == 1 && k % 32 == 0) {
    // Four rows per activation load, one accumulator each (independent dot-product chains).
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      const uint16_t* wr = w + r * k;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t j = 0; j < k; j += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + j);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 4 * k + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 5 * k + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 6 * k + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 7 * k + j), _MM_HINT_T0);
        a0 = _mm512_dpbf16_ps(a0, xv, (__m512bh)_mm512_loadu_si512(wr + j));
        a1 = _mm512_dpbf16_ps(a1, xv, (__m512bh)_mm512_loadu_si512(wr + k + j));
        a2 = _mm512_dpbf16_ps(a2, xv, (__m512bh)_mm512_loadu_si512(wr + 2 * k + j));
        a3 = _mm512_dpbf16_ps(a3, xv, (__m512bh)_mm512_loadu_si512(wr + 3 * k + j));
      }
      y[r] = _mm512_reduce_add_ps(a0);
      y[r + 1] = _mm512_reduce_add_ps(a1);
      y[r + 2] = _mm512_reduce_add_ps(a2);
      y[r + 3] = _mm512_reduce_add_ps(a3);
    }
    r0 = r;
  }
  int64_t r = r0;
  for (; r + kBf16Rows <= r1; r += kBf16Rows) Bf16Rows<kBf16Rows>(xb, w, y, m, n, k, r);
  for (; r < r1; ++r) Bf16Rows<1>(xb, w, y, m, n, k, r);
}

// ---------------------------------------------------------------------------------------------
// int8 helpers.

// Per-row symmetric int8 quantization of activations: q = round(x / s), s = max|x| / 127.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void QuantizeRowsGeneric(
    const float* x, int64_t m, int64_t k, int8_t* q, float* s) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * k;
    float amax = 0;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(xr[j]));
    const float sc = amax > 0 ? amax / 127.0f : 1.0f;
    const float inv = 1.0f / sc;
    for (int64_t j = 0; j < k; ++j)
      q[i * k + j] = static_cast<int8_t>(
          static_cast<int>(std::nearbyint(std::clamp(xr[j] * inv, -127.0f, 127.0f))));
    s[i] = sc;
  }
}

// The same, 16 values per step (the compiler keeps the scalar max|x| reduction serial): the same
// products, clamp and round-to-nearest-even, so the same bytes for finite inputs.
// kU8: writes u8 = q + 128 (the VNNI activations' order: the same bits as q with the sign bit
// flipped) straight from the rounding, instead of int8 and a second pass.
template <bool kU8 = false>
__attribute__((target("avx512f"))) void QuantizeRowsAvx512(const float* x, int64_t m, int64_t k,
                                                           int8_t* q, float* s) {
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * k;
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j += 16) {
      const __mmask16 mk = k - j >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (k - j)) - 1u);
      vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(mk, xr + j)), vmax);
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    const float sc = amax > 0 ? amax / 127.0f : 1.0f;
    const __m512 inv = _mm512_set1_ps(1.0f / sc);
    for (int64_t j = 0; j < k; j += 16) {
      const __mmask16 mk = k - j >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (k - j)) - 1u);
      const __m512 y = _mm512_min_ps(
          _mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xr + j), inv), lo), hi);
      const __m512i r = _mm512_cvtps_epi32(y);
      if constexpr (kU8) {
        _mm512_mask_cvtepi32_storeu_epi8(q + i * k + j, mk,
                                         _mm512_add_epi32(r, _mm512_set1_epi32(128)));
      } else {
        _mm512_mask_cvtepi32_storeu_epi8(q + i * k + j, mk, r);
      }
    }
    s[i] = sc;
  }
}

void QuantizeRows(const float* x, int64_t m, int64_t k, int8_t* q, float* s) {
  if (Cpu().avx512f) {
    QuantizeRowsAvx512(x, m, k, q, s);
  } else {
    QuantizeRowsGeneric(x, m, k, q, s);
  }
}

// Activations of the AVX2 int8 decode kernels (core/gemv_avx2.h): per-row int8 and scales, and
// for q4 (block_sums) -8 times each block's sum.
struct Int8Act {
  std::vector<int8_t> q;
  std::vector<float> s, nsum;
};

// Rows [r0, r1) of a (sized by the caller).
void FillInt8Act(const float* x, int64_t r0, int64_t r1, int64_t k, bool block_sums, Int8Act* a) {
  QuantizeRows(x + r0 * k, r1 - r0, k, a->q.data() + r0 * k, a->s.data() + r0);
  if (!block_sums) return;
  const int64_t nb = k / kQ4Block;
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) sum += a->q[i * k + b * kQ4Block + j];
      a->nsum[i * nb + b] = -8.0f * static_cast<float>(sum);
    }
}

// parallel: rows shared out on the OpenMP team (many rows).
void PrepareInt8Act(const float* x, int64_t m, int64_t k, bool block_sums, Int8Act* a,
                    bool parallel = false) {
  a->q.resize(static_cast<size_t>(m * k));
  a->s.resize(static_cast<size_t>(m));
  if (block_sums) a->nsum.resize(static_cast<size_t>(m * (k / kQ4Block)));
  if (!parallel) {
    FillInt8Act(x, 0, m, k, block_sums, a);
    return;
  }
  ParallelForOmp(m, [&](int64_t b, int64_t e) { FillInt8Act(x, b, e, k, block_sums, a); });
}

// x rounded to bf16 values, kept as f32 (the AVX2 bf16 kernel's activations).
void RoundToBf16(const float* x, int64_t n, std::vector<float>* out) {
  out->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) (*out)[i] = Bf16ToF32(F32ToBf16(x[i]));
}

constexpr int kQ8Group = 8;  // activation rows per q8 tile
constexpr int kQ8Rows = 2;   // weight rows per q8 tile

// y[i0 + i, r + rr] for rr < R, i < M from u8 activations (x + 128) and s8 weights: the offset
// is removed per row with 128 * sum(q). Any k (the tail is masked).
template <int R, int M>
__attribute__((target(PLM_AVX512 ",avx512vnni"), always_inline)) inline void Q8Tile(
    const uint8_t* xu, const float* xs, const Q8Matrix& w, float* y, int64_t r, int64_t i0) {
  const int64_t k = w.k, n = w.n;
  const int8_t* wr = w.q + r * k;
  const uint8_t* xr = xu + i0 * k;
  __m512i acc[R][M];
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm512_setzero_si512();
  int64_t j = 0;
  for (; j + 64 <= k; j += 64) {
    __m512i wv[R];
    for (int rr = 0; rr < R; ++rr) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + (kAheadTiles * R + rr) * k + j), _MM_HINT_T0);
      wv[rr] = _mm512_loadu_si512(wr + rr * k + j);
    }
    for (int i = 0; i < M; ++i) {
      const __m512i xv = _mm512_loadu_si512(xr + i * k + j);
      for (int rr = 0; rr < R; ++rr) acc[rr][i] = _mm512_dpbusd_epi32(acc[rr][i], xv, wv[rr]);
    }
  }
  if (j < k) {
    const __mmask64 mk = (1ull << (k - j)) - 1ull;
    __m512i wv[R];
    for (int rr = 0; rr < R; ++rr) wv[rr] = _mm512_maskz_loadu_epi8(mk, wr + rr * k + j);
    for (int i = 0; i < M; ++i) {
      const __m512i xv = _mm512_maskz_loadu_epi8(mk, xr + i * k + j);
      for (int rr = 0; rr < R; ++rr) acc[rr][i] = _mm512_dpbusd_epi32(acc[rr][i], xv, wv[rr]);
    }
  }
  const __mmask8 rm = static_cast<__mmask8>((1u << R) - 1u);
  const __m128i off = _mm_slli_epi32(_mm_maskz_loadu_epi32(rm, w.sum + r), 7);
  const __m128 ws = _mm_maskz_loadu_ps(rm, w.scale + r);
  for (int i = 0; i < M; ++i) {
    const __m128i dot = _mm_sub_epi32(SumRows(acc, i), off);
    const __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(xs[i0 + i]), ws), _mm_cvtepi32_ps(dot));
    _mm_mask_storeu_ps(y + (i0 + i) * n + r, rm, v);
  }
}

template <int R>
__attribute__((target(PLM_AVX512 ",avx512vnni"))) void Q8Rows(const uint8_t* xu, const float* xs,
                                                              const Q8Matrix& w, float* y,
                                                              int64_t m, int64_t r) {
  static_assert(kQ8Group >= 1 && kQ8Group <= 8);
  for (RowGroups g(m, kQ8Group); g.Next();) {
#define PLM_CALL(M) Q8Tile<R, M>(xu, xs, w, y, r, g.i0)
    PLM_SWITCH_M(kQ8Group, g.size, PLM_CALL)
#undef PLM_CALL
  }
}

// W rows [r0, r1) against m activation rows (u8 = q + 128, per-row scales xs).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"))) void GemvQ8Avx512(
    const uint8_t* xu, const float* xs, const Q8Matrix& w, float* y, int64_t m, int64_t r0,
    int64_t r1) {
  const int64_t k = w.k;
  if (m == 1 && k % 64 == 0) {
    // Four rows per activation load, one accumulator each (independent VNNI chains).
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      const int8_t* wr = w.q + r * k;
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t j = 0; j < k; j += 64) {
        const __m512i xv = _mm512_loadu_si512(xu + j);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 4 * k + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 5 * k + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 6 * k + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr + 7 * k + j), _MM_HINT_T0);
        a0 = _mm512_dpbusd_epi32(a0, xv, _mm512_loadu_si512(wr + j));
        a1 = _mm512_dpbusd_epi32(a1, xv, _mm512_loadu_si512(wr + k + j));
        a2 = _mm512_dpbusd_epi32(a2, xv, _mm512_loadu_si512(wr + 2 * k + j));
        a3 = _mm512_dpbusd_epi32(a3, xv, _mm512_loadu_si512(wr + 3 * k + j));
      }
      const __m512i av[4] = {a0, a1, a2, a3};
      for (int i = 0; i < 4; ++i) {
        const int64_t dot = static_cast<int64_t>(_mm512_reduce_add_epi32(av[i])) -
                            128 * static_cast<int64_t>(w.sum[r + i]);
        y[r + i] = xs[0] * w.scale[r + i] * static_cast<float>(dot);
      }
    }
    r0 = r;
  }
  int64_t r = r0;
  for (; r + kQ8Rows <= r1; r += kQ8Rows) Q8Rows<kQ8Rows>(xu, xs, w, y, m, r);
  for (; r < r1; ++r) Q8Rows<1>(xu, xs, w, y, m, r);
}

// Small-m kernel on the blocked layout of PackQ8: 64 outputs x M activation rows per tile (4 x M
// accumulators); each 256-byte group (64 outputs x 4 inputs) is one sequential read, 4 vpdpbusd
// per activation row. xu: u8 activations (q + 128) with row stride kp, zero past k (the padded
// weights are zero there too).
constexpr int kQ8BlockGroup = 4;         // activation rows per blocked tile
constexpr int64_t kQ8BlockAhead = 1024;  // software prefetch distance in bytes

// Outputs [col, col + 16) (lanes mk) of one row from their int32 sums over u8 activations:
// xs * ws * (acc - 128 sum(w)), the products in the order Rescale takes them.
__attribute__((target("avx512f"), always_inline)) inline __m512 RescaleQ8(__m512i acc,
                                                                          const Q8Matrix& w,
                                                                          int64_t col, __mmask16 mk,
                                                                          float xs) {
  const __m512i off = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mk, w.sum + col), 7);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(xs), _mm512_maskz_loadu_ps(mk, w.scale + col)),
                       _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, off)));
}

// Rows [i0, i0 + M) x outputs [64 blk, 64 blk + 64) of a packed q8 matrix, u8 activations xu
// (row stride kp): row i's outputs go to yb + i * ldy (yb: where row i0's output blk * 64 goes).
template <int M>
__attribute__((target(PLM_AVX512 ",avx512vnni"), always_inline)) inline void Q8BlockTile(
    const uint8_t* xu, const float* xs, const Q8Matrix& w, float* yb, int64_t ldy, int64_t blk,
    int64_t i0, int64_t l2) {
  const PackedS8& p = *w.packed;
  const int64_t kp = p.kp, n = w.n;
  const int8_t* wb = p.data + blk * 64 * kp;
  __m512i acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_setzero_si512();
  for (int64_t g = 0; g < kp / 4; ++g) {
    const int8_t* wg = wb + g * 256;
    __m512i wv[4];
    for (int c = 0; c < 4; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(wg + kQ8BlockAhead + 64 * c), _MM_HINT_T0);
      if (l2 != 0) _mm_prefetch(reinterpret_cast<const char*>(wg + l2 + 64 * c), _MM_HINT_T1);
      wv[c] = _mm512_load_si512(wg + 64 * c);
    }
    for (int i = 0; i < M; ++i) {
      int32_t x4;
      std::memcpy(&x4, xu + (i0 + i) * kp + 4 * g, 4);
      const __m512i xv = _mm512_set1_epi32(x4);
      for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], xv, wv[c]);
    }
  }
  for (int c = 0; c < 4; ++c) {
    const int64_t col = blk * 64 + 16 * c;
    if (col >= n) break;
    const __mmask16 mk = n - col >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (n - col)) - 1u);
    for (int i = 0; i < M; ++i)
      _mm512_mask_storeu_ps(yb + i * ldy + 16 * c, mk,
                            RescaleQ8(acc[i][c], w, col, mk, xs[i0 + i]));
  }
}

// Output blocks [b0, b1) (64 outputs each) of a packed q8 matrix against m activation rows.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"))) void GemvQ8Blocked(
    const uint8_t* xu, const float* xs, const Q8Matrix& w, float* y, int64_t m, int64_t b0,
    int64_t b1) {
  const int64_t l2 = StreamL2AheadBytes();
  for (int64_t blk = b0; blk < b1; ++blk)
    for (RowGroups g(m, kQ8BlockGroup); g.Next();) {
#define PLM_CALL(M) Q8BlockTile<M>(xu, xs, w, y + g.i0 * w.n + blk * 64, w.n, blk, g.i0, l2)
      PLM_SWITCH_M(kQ8BlockGroup, g.size, PLM_CALL)
#undef PLM_CALL
    }
}

// Activation rows per tile of the many-row kernel below: 6 x 4 accumulators, 4 weight vectors and
// a broadcast fit the 32 registers, and each 256-byte weight group serves 24 vpdpbusd.
constexpr int kQ8LargeGroup = 6;
// Inputs per pass of the many-row kernel: one output block's 64 x 512 weights (32 KB) stay in L1
// while every row tile passes over them (each tile's 24 sums then go to L2 and back half as often
// as with 256 inputs: gemm_bench-like vision shapes ~7 % faster, alternated runs).
constexpr int64_t kQ8LargeK = 512;

// acc[i][0..64) (+)= sum over groups [g0, g1) of u8 x[i0 + i] . w for M rows of one output block
// (wb: its packed weights); first: start from zero.
template <int M>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void Q8LargeTile(
    const uint8_t* xu, int64_t kp, const int8_t* wb, int64_t g0, int64_t g1, int64_t i0,
    int32_t* acc, bool first) {
  __m512i a[M][4];
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < 4; ++c)
      a[i][c] = first ? _mm512_setzero_si512() : _mm512_loadu_si512(acc + i * 64 + 16 * c);
  for (int64_t g = g0; g < g1; ++g) {
    const int8_t* wg = wb + g * 256;
    __m512i wv[4];
    for (int c = 0; c < 4; ++c) wv[c] = _mm512_load_si512(wg + 64 * c);
    for (int i = 0; i < M; ++i) {
      int32_t x4;
      std::memcpy(&x4, xu + (i0 + i) * kp + 4 * g, 4);
      const __m512i xv = _mm512_set1_epi32(x4);
      for (int c = 0; c < 4; ++c) a[i][c] = _mm512_dpbusd_epi32(a[i][c], xv, wv[c]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < 4; ++c) _mm512_storeu_si512(acc + i * 64 + 16 * c, a[i][c]);
}

// Rows and output blocks of one pass of the many-row kernel: the int32 sums of 240 rows x 8
// blocks (480 KB) stay in L2 while the weights of each block go by 512 inputs at a time (32 KB,
// L1) under the 40 row tiles, and the outputs are then written 512 columns of a row at a time.
// (Writing each block's 64 columns down all the rows of y, rows 4 or 16 KB apart, took ~40 % of
// the time: every line of a column of y falls in the same L1 sets. 120-row passes re-read the
// weights twice as often and measured a few % slower.)
constexpr int64_t kQ8LargePanel = 240, kQ8LargeBlocks = 8;

// y = x W^T (+ bias, epilogue) for many rows on the packed q8 weights, without oneDNN, output
// blocks [b0, b1) (64 outputs each; the threads share the blocks). No m x n int32 array goes to
// memory and back. xu: u8 activations (row stride kp).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,prfchw"))) void
GemmQ8BlockedRows(const uint8_t* xu, const float* xs, const Q8Matrix& w, int64_t m, int64_t b0,
                  int64_t b1, const float* bias, const GemmEpilogue& ep, float* y) {
  thread_local std::vector<int32_t> accbuf;
  int32_t* acc = GrowScratch(accbuf, static_cast<size_t>(kQ8LargePanel * kQ8LargeBlocks * 64));
  const PackedS8& p = *w.packed;
  const int64_t n = w.n, kp = p.kp, groups = kp / 4;
  for (int64_t p0 = 0; p0 < m; p0 += kQ8LargePanel) {
    const int64_t rows = std::min(kQ8LargePanel, m - p0);
    for (int64_t s0 = b0; s0 < b1; s0 += kQ8LargeBlocks) {
      const int64_t s1 = std::min(b1, s0 + kQ8LargeBlocks);
      const int64_t c0 = s0 * 64, c1 = std::min(n, s1 * 64);
      // The pass's output lines (480 KB) are requested for writing (prefetchw) a few after each
      // tile while the tiles compute: written all at once after them, their misses took ~17 %
      // of the time (the stores wait on a few fill buffers); spread out, gemm_bench 2 threads
      // 800-920 -> 940-1050 GOP/s.
      const int64_t seg_lines = (c1 - c0 + 15) / 16, all_lines = rows * seg_lines;
      const int64_t tile_calls =
          (s1 - s0) * ((groups + kQ8LargeK / 4 - 1) / (kQ8LargeK / 4)) * ((rows + 5) / 6);
      const int64_t per_call = (all_lines + tile_calls - 1) / tile_calls;
      int64_t next_line = 0, line_row = 0,
              line_col = 0;  // next_line = line_row * seg_lines + line_col
      for (int64_t blk = s0; blk < s1; ++blk) {
        const int8_t* wb = p.data + blk * 64 * kp;
        int32_t* ab = acc + (blk - s0) * kQ8LargePanel * 64;
        for (int64_t g0 = 0; g0 < groups; g0 += kQ8LargeK / 4) {
          const int64_t g1 = std::min(groups, g0 + kQ8LargeK / 4);
          for (RowGroups g(rows, kQ8LargeGroup); g.Next();) {
#define PLM_CALL(M) Q8LargeTile<M>(xu, kp, wb, g0, g1, p0 + g.i0, ab + g.i0 * 64, g0 == 0)
            PLM_SWITCH_M(kQ8LargeGroup, g.size, PLM_CALL)
#undef PLM_CALL
            for (int64_t l = 0; l < per_call && next_line < all_lines; ++l, ++next_line) {
              __builtin_prefetch(y + (p0 + line_row) * n + c0 + line_col * 16, 1, 3);
              if (++line_col == seg_lines) {  // (no division per line: it showed in profiles)
                line_col = 0;
                ++line_row;
              }
            }
          }
        }
      }
      // Rescaled as Rescale does, then finished as FinishRows does (FinishVector): the outputs
      // equal those of the oneDNN path bit for bit. 512 columns of a row at a time, walked by
      // block and vector with the matrix's and epilogue's pointers in locals (indexing by
      // column with a division, and reloading them after every store, was ~half of the
      // epilogue's instructions; its time, ~7 % of the kernel's, is mostly the stores' misses,
      // so the GEMM moved within the noise).
      const float* scale = w.scale;
      const int32_t* sum = w.sum;
      const float* gamma = ep.gamma;
      const GemmEpilogue::Kind kind = ep.kind;
      for (int64_t i = 0; i < rows; ++i) {
        float* yi = y + (p0 + i) * n;
        const __m512 xsv = _mm512_set1_ps(xs[p0 + i]);
        for (int64_t blk = s0; blk < s1; ++blk) {
          const int32_t* ai = acc + ((blk - s0) * kQ8LargePanel + i) * 64;
          for (int64_t cc = blk * 64; cc < std::min(c1, blk * 64 + 64); cc += 16, ai += 16) {
            const __mmask16 mk = c1 - cc >= 16 ? static_cast<__mmask16>(0xffff)
                                               : static_cast<__mmask16>((1u << (c1 - cc)) - 1u);
            // RescaleQ8's operations in its order.
            const __m512i off = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mk, sum + cc), 7);
            const __m512 v =
                _mm512_mul_ps(_mm512_mul_ps(xsv, _mm512_maskz_loadu_ps(mk, scale + cc)),
                              _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(ai), off)));
            FinishVector(v, mk, bias != nullptr ? bias + cc : nullptr, kind,
                         gamma != nullptr ? gamma + cc : nullptr, yi + cc);
          }
        }
        if (kind == GemmEpilogue::Kind::kGelu) GeluFastInPlace(yi + c0, c1 - c0);
      }
    }
  }
}

// y[i, j] = xs[i] * ws[j] * (acc[i, j] - 128 * sum[j]) for rows [b, e); acc has row stride na, y
// row stride ny; sum (weight row sums: the offset of u8 activations q + 128) may be null.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void Rescale(
    const int32_t* acc, int64_t na, const float* xs, const float* ws, float* y, int64_t ny,
    int64_t b, int64_t e, int64_t n, const int32_t* sum) {
  for (int64_t i = b; i < e; ++i) {
    const float sx = xs[i];
    if (sum != nullptr) {
      for (int64_t j = 0; j < n; ++j)
        y[i * ny + j] = sx * ws[j] * static_cast<float>(acc[i * na + j] - sum[j] * 128);
    } else {
      for (int64_t j = 0; j < n; ++j)
        y[i * ny + j] = sx * ws[j] * static_cast<float>(acc[i * na + j]);
    }
  }
}

// Where a small-m GEMM writes x W^T before an epilogue that accumulates into y (per thread,
// reused across calls).
float* EpilogueScratch(int64_t size) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < static_cast<size_t>(size)) scratch.resize(static_cast<size_t>(size));
  return scratch.data();
}

// Rescale, then bias and epilogue, one row at a time through a row buffer in cache.
void RescaleFinish(const int32_t* acc, int64_t na, const float* xs, const float* ws, float* y,
                   int64_t ny, int64_t b, int64_t e, int64_t n, const float* bias,
                   const GemmEpilogue& ep, const int32_t* sum = nullptr) {
  if (bias == nullptr && ep.kind == GemmEpilogue::Kind::kStore) {
    Rescale(acc, na, xs, ws, y, ny, b, e, n, sum);
    return;
  }
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(n));
  for (int64_t i = b; i < e; ++i) {
    Rescale(acc + i * na, na, xs + i, ws, row.data(), n, 0, 1, n, sum);
    FinishRows(row.data(), 0, y + i * ny, ny, 0, 1, n, bias, ep);
  }
}

// int8 values in place as u8 = q + 128 (the same bits with the sign bit flipped).
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void ToU8(int8_t* q,
                                                                                 int64_t n) {
  auto* u = reinterpret_cast<uint8_t*>(q);
  for (int64_t i = 0; i < n; ++i) u[i] ^= 0x80;
}

// Rows [b, e) of x (rows of k) quantized per row to u8 = q + 128 into xu (row stride kp, zero
// past k) with their scales in xs.
void QuantizeRowsU8Into(const float* x, int64_t b, int64_t e, int64_t k, int64_t kp, uint8_t* xu,
                        float* xs) {
  for (int64_t i = b; i < e; ++i) {
    auto* q = reinterpret_cast<int8_t*>(xu + i * kp);
    if (Cpu().avx512f) {
      QuantizeRowsAvx512<true>(x + i * k, 1, k, q, xs + i);
    } else {
      QuantizeRows(x + i * k, 1, k, q, xs + i);
      ToU8(q, k);
    }
    std::memset(xu + i * kp + k, 0, static_cast<size_t>(kp - k));
  }
}

// x (m rows of k) quantized per row to u8 = q + 128 with row stride kp, zero past k.
void QuantizeRowsU8Padded(const float* x, int64_t m, int64_t k, int64_t kp,
                          std::vector<uint8_t>* xu, std::vector<float>* xs) {
  xu->resize(static_cast<size_t>(m * kp));
  xs->resize(static_cast<size_t>(m));
  QuantizeRowsU8Into(x, 0, m, k, kp, xu->data(), xs->data());
}

// x (m rows) quantized to u8 = q + 128 for VNNI (u8 x s8).
void QuantizeRowsU8(const float* x, int64_t m, int64_t k, std::vector<uint8_t>* xu,
                    std::vector<float>* xs) {
  QuantizeRowsU8Padded(x, m, k, k, xu, xs);
}

// q4 GEMV activations: each row quantized to int8 once (x stays signed: vpdpbusd multiplies the
// unsigned nibbles 0..15 by s8 x, and the zero point 8 is removed per row with
// -8 * sum_b s_b * xsum_b, one FMA per 16 blocks with `nsum`). One 64-byte load of packed weights
// covers a 128-value chunk (groups 2c, 2c + 1 = blocks 4c..4c + 3); an AND and a shift give the
// nibble vectors lo = [block 4c | block 4c + 2] and hi = [block 4c + 1 | block 4c + 3], 32 values
// each half.
//   m == 1 (GemvQ4RowsM1): x laid out per chunk as [lo's values, hi's values]; one vpdpbusd per
//     nibble vector sums each block in 8 int32 lanes, then one int->float conversion and one FMA
//     with the per-lane block scale per vector. Four weight rows share each activation load.
//   m >= 2 (Q4Tile): the nibble vectors are regrouped once per weight chunk (two 128-bit
//     shuffles, shared by the m rows) into A = the first 16 values of blocks 4c, 4c + 2, 4c + 1,
//     4c + 3 and B = their last 16 values, so vpdpbusd(A) then vpdpbusd(B) accumulate each block
//     in the same 4 int32 lanes: one conversion and one FMA per chunk and row instead of two.
//     x is laid out per chunk as [A's values, B's values].
struct Q4Act {
  std::vector<int8_t> x;     // [m, xstride] in the layout above, zero padded
  std::vector<float> nsum;   // [m, nstride]: -8 * sum of x over each block (zero padded)
  std::vector<float> scale;  // [m]
  int64_t xstride = 0, nstride = 0;
};

void PrepareQ4Act(const float* x, int64_t m, int64_t k, Q4Act* a) {
  const int64_t chunks = (k + 127) / 128, nb = k / kQ4Block;
  a->xstride = chunks * 128;
  a->nstride = (nb + 15) / 16 * 16;
  thread_local std::vector<int8_t> q;
  q.resize(static_cast<size_t>(m * k));
  a->scale.resize(static_cast<size_t>(m));
  QuantizeRows(x, m, k, q.data(), a->scale.data());
  a->x.assign(static_cast<size_t>(m * a->xstride), 0);
  a->nsum.assign(static_cast<size_t>(m * a->nstride), 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    const int8_t* qi = q.data() + i * k;
    int8_t* xi = a->x.data() + i * a->xstride;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c = b / 4, lb = b % 4;  // chunk, block within the chunk
      const int8_t* src = qi + b * kQ4Block;
      if (m == 1) {
        // lo (64 bytes) = blocks 4c, 4c + 2; hi = blocks 4c + 1, 4c + 3.
        std::copy(src, src + 32, xi + c * 128 + (lb % 2) * 64 + (lb / 2) * 32);
      } else {
        // A/B quarter of block lb: 4c -> 0, 4c + 1 -> 2, 4c + 2 -> 1, 4c + 3 -> 3.
        const int64_t quarter = (lb % 2) * 2 + lb / 2;
        std::copy(src, src + 16, xi + c * 128 + quarter * 16);
        std::copy(src + 16, src + 32, xi + c * 128 + 64 + quarter * 16);
      }
      int32_t s = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) s += src[j];
      a->nsum[i * a->nstride + b] = -8.0f * static_cast<float>(s);
    }
  }
}

template <int R>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c"),
               always_inline)) inline void
GemvQ4RowsM1(const Q4Act& a, const Q4Matrix& w, float* y, int64_t r, const __m512i* idx) {
  const int64_t k = w.k, nb = k / kQ4Block, groups = k / 64, rb = k / 2;
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const int8_t* xa = a.x.data();
  __m512 acc[R], cor[R];
  for (int i = 0; i < R; ++i) acc[i] = cor[i] = _mm512_setzero_ps();
  // The block scales are a separate stream the hardware prefetcher follows poorly (a few cache
  // lines per row): fetch those of the rows two steps ahead.
  {
    const char* sp = reinterpret_cast<const char*>(w.scale + (r + 2 * R) * nb);
    for (int64_t off = 0; off < R * nb * 2; off += 64) _mm_prefetch(sp + off, _MM_HINT_T0);
  }
  for (int64_t g0 = 0; g0 < groups; g0 += 8) {  // 8 groups = 16 blocks = 4 chunks
    const int64_t ng = std::min<int64_t>(8, groups - g0);
    const __mmask16 sm = static_cast<__mmask16>((1u << (2 * ng)) - 1u);
    const __m512 ns = _mm512_loadu_ps(a.nsum.data() + 2 * g0);
    __m512 sc[R];
    for (int i = 0; i < R; ++i) {
      sc[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(sm, w.scale + (r + i) * nb + 2 * g0));
      cor[i] = _mm512_fmadd_ps(sc[i], ns, cor[i]);
    }
    for (int64_t c = 0; 2 * c < ng; ++c) {
      const int64_t g = g0 + 2 * c;
      const __mmask64 wm = g + 1 < groups ? ~0ull : 0xffffffffull;
      const __m512i xlo = _mm512_loadu_si512(xa + g * 64);
      const __m512i xhi = _mm512_loadu_si512(xa + g * 64 + 64);
      for (int i = 0; i < R; ++i) {
        const uint8_t* wp = w.q + (r + i) * rb + g * 32;
        _mm_prefetch(reinterpret_cast<const char*>(wp) + R * rb, _MM_HINT_T0);
        const __m512i pk = _mm512_maskz_loadu_epi8(wm, wp);
        const __m512i lo = _mm512_and_si512(pk, mask);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(pk, 4), mask);
        const __m512i dl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo);
        const __m512i dh = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, xhi);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dl), _mm512_permutexvar_ps(idx[2 * c], sc[i]),
                                 acc[i]);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dh),
                                 _mm512_permutexvar_ps(idx[2 * c + 1], sc[i]), acc[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i)
    y[r + i] = a.scale[0] * _mm512_reduce_add_ps(_mm512_add_ps(acc[i], cor[i]));
}

// Scale lanes of chunk c (blocks 4c..4c+3 of the 16 converted at once): lo = blocks 4c and
// 4c + 2, hi = 4c + 1 and 4c + 3, eight lanes each.
__attribute__((target("avx512f"))) void Q4ChunkIndex(__m512i* idx) {
  for (int c = 0; c < 4; ++c) {
    idx[2 * c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(4 * c)),
                                    _mm256_set1_epi32(4 * c + 2), 1);
    idx[2 * c + 1] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(4 * c + 1)),
                                        _mm256_set1_epi32(4 * c + 3), 1);
  }
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c"))) void GemvQ4M1Avx512(
    const Q4Act& a, const Q4Matrix& w, float* y, int64_t r0, int64_t r1) {
  __m512i idx[8];
  Q4ChunkIndex(idx);
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) GemvQ4RowsM1<4>(a, w, y, r, idx);
  for (; r < r1; ++r) GemvQ4RowsM1<1>(a, w, y, r, idx);
}

constexpr int kQ4Group = 4;  // activation rows per q4 tile
constexpr int kQ4Rows = 4;   // weight rows per q4 tile

// The m >= 2 q4 kernel (see Q4Act): R weight rows x M activation rows, each regrouped weight
// chunk applied to the M rows.
template <int R, int M>
__attribute__((target(PLM_AVX512 ",avx512vnni,f16c"), always_inline)) inline void Q4Tile(
    const Q4Act& a, const Q4Matrix& w, float* y, int64_t r, int64_t i0, const __m512i* idx) {
  const int64_t k = w.k, n = w.n, nb = k / kQ4Block, groups = k / 64, rb = k / 2;
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const int8_t* xa = a.x.data() + i0 * a.xstride;
  const float* na = a.nsum.data() + i0 * a.nstride;
  __m512 acc[R][M];
  for (int rr = 0; rr < R; ++rr)
    for (int i = 0; i < M; ++i) acc[rr][i] = _mm512_setzero_ps();
  {
    // Block scales of the rows two tiles ahead (a separate stream, see GemvQ4RowsM1).
    const char* sp = reinterpret_cast<const char*>(w.scale + (r + 2 * R) * nb);
    for (int64_t off = 0; off < R * nb * 2; off += 64) _mm_prefetch(sp + off, _MM_HINT_T0);
  }
  for (int64_t g0 = 0; g0 < groups; g0 += 8) {  // 8 groups = 16 blocks = 4 chunks
    const int64_t ng = std::min<int64_t>(8, groups - g0);
    const __mmask16 sm = static_cast<__mmask16>((1u << (2 * ng)) - 1u);
    __m512 sc[R];
    for (int rr = 0; rr < R; ++rr)
      sc[rr] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(sm, w.scale + (r + rr) * nb + 2 * g0));
    for (int i = 0; i < M; ++i) {
      const __m512 ns = _mm512_loadu_ps(na + i * a.nstride + 2 * g0);
      for (int rr = 0; rr < R; ++rr) acc[rr][i] = _mm512_fmadd_ps(sc[rr], ns, acc[rr][i]);
    }
    for (int64_t c = 0; 2 * c < ng; ++c) {
      const int64_t g = g0 + 2 * c;
      const __mmask64 wm = g + 1 < groups ? ~0ull : 0xffffffffull;
      for (int rr = 0; rr < R; ++rr) {
        const uint8_t* wp = w.q + (r + rr) * rb + g * 32;
        _mm_prefetch(reinterpret_cast<const char*>(wp) + kAheadTiles * R * rb, _MM_HINT_T0);
        const __m512i pk = _mm512_maskz_loadu_epi8(wm, wp);
        const __m512i lo = _mm512_and_si512(pk, mask);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(pk, 4), mask);
        const __m512i va = _mm512_shuffle_i32x4(lo, hi, 0x88);  // lo.q0 lo.q2 hi.q0 hi.q2
        const __m512i vb = _mm512_shuffle_i32x4(lo, hi, 0xdd);  // lo.q1 lo.q3 hi.q1 hi.q3
        const __m512 s = _mm512_permutexvar_ps(idx[c], sc[rr]);
        for (int i = 0; i < M; ++i) {
          const int8_t* xi = xa + i * a.xstride + g * 64;
          __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), va, _mm512_loadu_si512(xi));
          d = _mm512_dpbusd_epi32(d, vb, _mm512_loadu_si512(xi + 64));
          acc[rr][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, acc[rr][i]);
        }
      }
    }
  }
  const __mmask8 rm = static_cast<__mmask8>((1u << R) - 1u);
  for (int i = 0; i < M; ++i)
    _mm_mask_storeu_ps(y + (i0 + i) * n + r, rm,
                       _mm_mul_ps(_mm_set1_ps(a.scale[i0 + i]), SumRows(acc, i)));
}

template <int R>
__attribute__((target(PLM_AVX512 ",avx512vnni,f16c"))) void Q4Rows(const Q4Act& a,
                                                                   const Q4Matrix& w, float* y,
                                                                   int64_t m, int64_t r,
                                                                   const __m512i* idx) {
  static_assert(kQ4Group >= 1 && kQ4Group <= 8);
  for (RowGroups g(m, kQ4Group); g.Next();) {
#define PLM_CALL(M) Q4Tile<R, M>(a, w, y, r, g.i0, idx)
    PLM_SWITCH_M(kQ4Group, g.size, PLM_CALL)
#undef PLM_CALL
  }
}

// q4 rows [r0, r1) against the m rows of `a` (any m <= kSmallM; m == 1 has its own kernel).
__attribute__((target(PLM_AVX512 ",avx512vnni,f16c"))) void GemvQ4Avx512(const Q4Act& a,
                                                                         const Q4Matrix& w,
                                                                         float* y, int64_t m,
                                                                         int64_t r0, int64_t r1) {
  if (m == 1) {
    GemvQ4M1Avx512(a, w, y, r0, r1);
    return;
  }
  // Block scale lanes of chunk c (of the 16 blocks converted at once), in the order of A / B.
  __m512i idx[4];
  for (int c = 0; c < 4; ++c)
    idx[c] = _mm512_set_epi32(4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 1, 4 * c + 1,
                              4 * c + 1, 4 * c + 1, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2,
                              4 * c, 4 * c, 4 * c, 4 * c);
  int64_t r = r0;
  for (; r + kQ4Rows <= r1; r += kQ4Rows) Q4Rows<kQ4Rows>(a, w, y, m, r, idx);
  for (; r < r1; ++r) Q4Rows<1>(a, w, y, m, r, idx);
}

// Per-row int8 re-quantization of q4 rows: value q * s_b becomes round(q * (s_b / S)) with
// S = max_b(|s_b| * max|q|) / 127 per row. The AVX-512 and portable versions do the same f32
// operations, so they give identical bytes.
// (Cloned for AVX2 CPUs, whose q4 prompts expand every panel here: the same elementwise f32
// operations vectorised, so the same bytes.)
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void ExpandQ4RowsGeneric(
    const Q4Matrix& w, int64_t r0, int64_t r1, int8_t* q, float* scale) {
  const int64_t k = w.k, nb = k / kQ4Block;
  std::vector<float> f(static_cast<size_t>(nb));
  std::vector<int8_t> v(static_cast<size_t>(k));
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = w.q + r * (k / 2);
    for (int64_t g = 0; g < k / 64; ++g)
      for (int64_t j = 0; j < 32; ++j) {
        v[g * 64 + j] = static_cast<int8_t>((wr[g * 32 + j] & 0x0f) - 8);
        v[g * 64 + j + 32] = static_cast<int8_t>((wr[g * 32 + j] >> 4) - 8);
      }
    float amax = 0;
    for (int64_t b = 0; b < nb; ++b) {
      int qmax = 0;
      for (int64_t j = 0; j < kQ4Block; ++j)
        qmax = std::max(qmax, std::abs(int{v[b * kQ4Block + j]}));
      amax = std::max(amax, std::fabs(F16ToF32(w.scale[r * nb + b])) * static_cast<float>(qmax));
    }
    const float S = amax > 0 ? amax / 127.0f : 1.0f;
    for (int64_t b = 0; b < nb; ++b) f[b] = F16ToF32(w.scale[r * nb + b]) / S;
    int8_t* dst = q + (r - r0) * k;
    for (int64_t j = 0; j < k; ++j) {
      const float t = static_cast<float>(v[j]) * f[j / kQ4Block];
      dst[j] =
          static_cast<int8_t>(static_cast<int>(std::nearbyint(std::clamp(t, -127.0f, 127.0f))));
    }
    scale[r - r0] = S;
  }
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,f16c"))) void ExpandQ4RowsAvx512(
    const Q4Matrix& w, int64_t r0, int64_t r1, int8_t* q, float* scale) {
  const int64_t k = w.k, nb = k / kQ4Block;
  const __m256i lo_mask = _mm256_set1_epi8(0x0f);
  const __m512i eight = _mm512_set1_epi8(8);
  thread_local std::vector<float> f;
  thread_local std::vector<int8_t> v;
  f.resize(static_cast<size_t>(nb));
  v.resize(static_cast<size_t>(k));
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = w.q + r * (k / 2);
    for (int64_t g = 0; g < k / 64; ++g) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + g * 32));
      const __m256i lo = _mm256_and_si256(packed, lo_mask);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), lo_mask);
      _mm512_storeu_si512(
          v.data() + g * 64,
          _mm512_sub_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), eight));
    }
    // Block scales (f16 -> f32, 16 at a time) and the row's max |q * s_b| (equal to the
    // portable max_b(|s_b| * max|q|): scaling by one s_b is monotonic in |q|).
    for (int64_t b = 0; b < nb; b += 16) {
      const int64_t cnt = std::min<int64_t>(16, nb - b);
      const __mmask16 mk = static_cast<__mmask16>((1u << cnt) - 1u);
      _mm512_mask_storeu_ps(f.data() + b, mk,
                            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, w.scale + r * nb + b)));
    }
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j += 16) {
      const __m512 x = _mm512_cvtepi32_ps(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v.data() + j))));
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(f[j / kQ4Block]))));
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    const float S = amax > 0 ? amax / 127.0f : 1.0f;
    for (int64_t b = 0; b < nb; ++b) f[b] = f[b] / S;
    int8_t* dst = q + (r - r0) * k;
    const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    for (int64_t j = 0; j < k; j += 16) {
      const __m512 x = _mm512_cvtepi32_ps(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v.data() + j))));
      __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(f[j / kQ4Block]));
      t = _mm512_min_ps(_mm512_max_ps(t, nlim), lim);
      const __m512i ti = _mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j), _mm512_cvtsepi32_epi8(ti));
    }
    scale[r - r0] = S;
  }
}

thread_local int g_omp_threads = 0;

}  // namespace

void QuantizeActivationRows(const float* x, int64_t m, int64_t k, int8_t* q, float* s) {
  QuantizeRows(x, m, k, q, s);
}

void SyncGemmThreads() {
  const int t = ThreadPool::Global().num_threads();
  if (t != g_omp_threads) {
    omp_set_num_threads(t);
    g_omp_threads = t;
  }
}

// ---------------------------------------------------------------------------------------------

void GemmF32Omp(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n,
                int64_t k) {
  dnnl::matmul prim;
  if (m == 0 || n == 0 || !Dnnl::Get().Find(MmKind::kF32, m, n, k, &prim)) {
    GemmF32(x, w, bias, y, m, n, k);
    return;
  }
  SyncGemmThreads();
  Dnnl::Get().Run(prim, MmKind::kF32, m, n, k, x, w, y);
  AddBiasParallel(y, bias, m, n);
}

// ---------------------------------------------------------------------------------------------
// bf16 in oneDNN's BA16a64b2a layout of W^T: per 64 outputs, per 2 inputs, 64 x 2 values (one
// vdpbf16ps operand per 16 outputs); k padded to 32 and n to 64 with zeros.

struct PackedBf16 {
  int64_t n = 0, k = 0, np = 0, kp = 0;
  const uint16_t* data = nullptr;
  LargeBuffer<uint16_t> owned;
};

namespace {

template <int M>
__attribute__((target(PLM_AVX512 ",avx512bf16"), always_inline)) inline void Bf16BlockTile(
    const uint16_t* xb, const PackedBf16& w, float* y, int64_t blk, int64_t i0, int64_t l2) {
  const int64_t kp = w.kp, n = w.n;
  const uint16_t* wb = w.data + blk * 64 * kp;
  __m512 acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_setzero_ps();
  for (int64_t g = 0; g < kp / 2; ++g) {
    const uint16_t* wg = wb + g * 128;
    __m512bh wv[4];
    for (int c = 0; c < 4; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(wg + 512 + 32 * c), _MM_HINT_T0);
      if (l2 != 0) _mm_prefetch(reinterpret_cast<const char*>(wg + 32 * c) + l2, _MM_HINT_T1);
      wv[c] = (__m512bh)_mm512_load_si512(wg + 32 * c);
    }
    for (int i = 0; i < M; ++i) {
      int32_t x2;
      std::memcpy(&x2, xb + (i0 + i) * kp + 2 * g, 4);
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(x2);
      for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_dpbf16_ps(acc[i][c], xv, wv[c]);
    }
  }
  for (int c = 0; c < 4; ++c) {
    const int64_t col = blk * 64 + 16 * c;
    if (col >= n) break;
    const __mmask16 mk = n - col >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (n - col)) - 1u);
    for (int i = 0; i < M; ++i) _mm512_mask_storeu_ps(y + (i0 + i) * n + col, mk, acc[i][c]);
  }
}

constexpr int kBf16BlockGroup = 4;  // activation rows per blocked bf16 tile

// Output blocks [b0, b1) of packed bf16 weights against m rows of bf16 x (row stride kp, zero
// past k).
__attribute__((target(PLM_AVX512 ",avx512bf16"))) void GemvBf16Blocked(const uint16_t* xb,
                                                                       const PackedBf16& w,
                                                                       float* y, int64_t m,
                                                                       int64_t b0, int64_t b1) {
  const int64_t l2 = StreamL2AheadBytes();
  for (int64_t blk = b0; blk < b1; ++blk)
    for (RowGroups g(m, kBf16BlockGroup); g.Next();) {
#define PLM_CALL(M) Bf16BlockTile<M>(xb, w, y, blk, g.i0, l2)
      PLM_SWITCH_M(kBf16BlockGroup, g.size, PLM_CALL)
#undef PLM_CALL
    }
}

// x (m rows of k) as bf16 with row stride kp, zero past k.
void ToBf16Padded(const float* x, int64_t m, int64_t k, int64_t kp, std::vector<uint16_t>* xb) {
  xb->assign(static_cast<size_t>(m * kp), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) (*xb)[i * kp + j] = F32ToBf16(x[i * k + j]);
}

}  // namespace

int64_t Bf16BlockedBytes(int64_t n, int64_t k) {
  return (n + 63) / 64 * 64 * ((k + 31) / 32 * 32) * 2;
}

void BlockBf16Rows(const uint16_t* w, int64_t n, int64_t k, int64_t b0, int64_t b1, uint16_t* out) {
  BlockRowsBA64<uint16_t, 2>(w, n, k, (k + 31) / 32 * 32, b0, b1, out);
}

void UnblockBf16(const uint16_t* blocked, int64_t n, int64_t k, uint16_t* w) {
  UnblockRowsBA64<uint16_t, 2>(blocked, n, k, (k + 31) / 32 * 32, w);
}

namespace {

// Whether this CPU and oneDNN run the blocked bf16 layout for an [n, k] matrix.
bool BlockedBf16Usable(int64_t n, int64_t k) {
  dnnl::matmul probe;
  return Cpu().avx512_full() && Dnnl::Get().Find(MmKind::kBF16Blocked, kChunkM, n, k, &probe);
}

std::shared_ptr<PackedBf16> NewPackedBf16(int64_t n, int64_t k) {
  auto p = std::make_shared<PackedBf16>();
  p->n = n;
  p->k = k;
  p->np = (n + 63) / 64 * 64;
  p->kp = (k + 31) / 32 * 32;
  return p;
}

}  // namespace

std::shared_ptr<const PackedBf16> PackBf16(const uint16_t* w, int64_t n, int64_t k) {
  if (w == nullptr || !BlockedBf16Usable(n, k)) return nullptr;
  auto p = NewPackedBf16(n, k);
  p->owned = NewLargeBuffer<uint16_t>(static_cast<size_t>(Bf16BlockedBytes(n, k)));
  p->data = p->owned.get();
  uint16_t* out = p->owned.get();
  ParallelForOmp(p->np / 64, [&](int64_t b0, int64_t b1) { BlockBf16Rows(w, n, k, b0, b1, out); });
  return p;
}

std::shared_ptr<const PackedBf16> UseBlockedBf16(const uint16_t* blocked, int64_t n, int64_t k) {
  if (!BlockedBf16Usable(n, k)) return nullptr;
  if (reinterpret_cast<uintptr_t>(blocked) % 64 != 0)
    throw Error(ErrorCode::kInvalidArgument, "blocked bf16 weights must be 64-byte aligned");
  auto p = NewPackedBf16(n, k);
  p->data = blocked;
  return p;
}

size_t PackedBf16Bytes(const PackedBf16& w) {
  return static_cast<size_t>(w.np * w.kp * 2);
}

size_t PackedBf16OwnedBytes(const PackedBf16& w) {
  return w.owned.get_deleter().bytes;
}

namespace {

// 64-output blocks [b0, b1) of blocked bf16 weights (BA16a64b2a: per block, per 16 inputs,
// [8][64][2]) widened to f32 in oneDNN's BA16a64b ([16][64] per 16 inputs), k16 = k rounded up
// to 16 inputs (the bf16 layout pads to 32: its extra zero inputs are dropped).
__attribute__((target(PLM_AVX512))) void WidenBf16Blocks(const PackedBf16& w, int64_t b0,
                                                         int64_t b1, int64_t k16, float* out) {
  const __m512i hi = _mm512_set1_epi32(static_cast<int32_t>(0xffff0000u));
  for (int64_t b = b0; b < b1; ++b) {
    const uint16_t* src = w.data + b * 64 * w.kp;
    float* dst = out + (b - b0) * 64 * k16;
    for (int64_t kb = 0; kb < k16 / 16; ++kb)
      for (int64_t p = 0; p < 8; ++p) {
        const uint16_t* sp = src + kb * 1024 + p * 128;
        float* d0 = dst + kb * 1024 + 2 * p * 64;
        for (int c = 0; c < 4; ++c) {
          // 16 outputs x (input 2p, input 2p + 1): the low half of each pair is input 2p.
          const __m512i u = _mm512_loadu_si512(sp + 32 * c);
          _mm512_storeu_ps(d0 + 16 * c, _mm512_castsi512_ps(_mm512_slli_epi32(u, 16)));
          _mm512_storeu_ps(d0 + 64 + 16 * c, _mm512_castsi512_ps(_mm512_and_si512(u, hi)));
        }
      }
  }
}

// x W^T for m > kSmallM through oneDNN's f32 matmul: W's blocked bf16 weights widened to f32 in
// panels of at most 32 MB (exact: bf16 -> f32 loses nothing) and x rounded to bf16 as the bf16
// matmul and the decode kernels do, so every route multiplies the same bf16 values (the results
// differ only in summation order, whatever the CPU or the number of rows). A
// panel narrower than W writes a dense scratch that is copied into its columns (oneDNN 2.6's
// brgemm matmul takes no output row stride). False (nothing written) when oneDNN has no such
// matmul.
bool GemmBF16PackedViaF32(const float* x, const PackedBf16& w, float* y, int64_t m) {
  const int64_t n = w.n, k = w.k, k16 = (k + 15) / 16 * 16, blocks = w.np / 64;
  const int64_t panel_blocks = std::clamp<int64_t>((int64_t{32} << 20) / (64 * k16 * 4), 1, blocks);
  const int64_t chunk = ChunkRows(m);
  dnnl::matmul probe;
  if (!Dnnl::Get().Find(MmKind::kF32Blocked, std::min(m, chunk), std::min(n, panel_blocks * 64), k,
                        &probe))
    return false;
  thread_local LargeBuffer<float> wf;  // reused: one panel per call (up to 32 MB)
  thread_local size_t wf_bytes = 0;
  const size_t need = static_cast<size_t>(panel_blocks * 64 * k16) * sizeof(float);
  if (wf_bytes < need) {
    wf = NewLargeBuffer<float>(need);
    wf_bytes = need;
  }
  float* wp = wf.get();
  thread_local std::vector<float> xr, out;  // x rounded to bf16; a narrow panel's output rows
  float* xrp = GrowScratch(xr, static_cast<size_t>(m * k));
  ParallelForOmp(m, [&](int64_t b, int64_t e) {
    for (int64_t i = b * k; i < e * k; ++i) xrp[i] = Bf16ToF32(F32ToBf16(x[i]));
  });
  for (int64_t b0 = 0; b0 < blocks; b0 += panel_blocks) {
    const int64_t b1 = std::min(blocks, b0 + panel_blocks);
    const int64_t r0 = b0 * 64, np = std::min(n, b1 * 64) - r0;
    ParallelForOmp(b1 - b0, [&](int64_t b, int64_t e) {
      WidenBf16Blocks(w, b0 + b, b0 + e, k16, wp + b * 64 * k16);
    });
    for (int64_t i0 = 0; i0 < m; i0 += chunk) {
      const int64_t mm = std::min(chunk, m - i0);
      const dnnl::matmul prim = Dnnl::Get().Blocked(MmKind::kF32Blocked, mm, np, k, "f32");
      SyncGemmThreads();
      if (np == n) {
        Dnnl::Get().Run(prim, MmKind::kF32Blocked, mm, np, k, xrp + i0 * k, wp, y + i0 * n);
        continue;
      }
      float* op = GrowScratch(out, static_cast<size_t>(mm * np));
      Dnnl::Get().Run(prim, MmKind::kF32Blocked, mm, np, k, xrp + i0 * k, wp, op);
      float* yp = y + i0 * n + r0;
      ParallelForOmp(mm, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) std::copy_n(op + i * np, np, yp + i * n);
      });
    }
  }
  return true;
}

}  // namespace

void GemmBF16Packed(const float* x, const PackedBf16& w, const float* bias, float* y, int64_t m) {
  const int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  if (m > kSmallM && Cpu().bf16_gemm_via_f32() && GemmBF16PackedViaF32(x, w, y, m)) {
    AddBiasParallel(y, bias, m, n);
    return;
  }
  if (m <= kSmallM) {
    thread_local std::vector<uint16_t> xb;
    ToBf16Padded(x, m, k, w.kp, &xb);
    const uint16_t* xp = xb.data();
    ThreadPool::Global().ParallelFor(
        w.np / 64, [&](int64_t b, int64_t e) { GemvBf16Blocked(xp, w, y, m, b, e); }, kBlockGrain);
    AddBias(y, bias, m, n);
    return;
  }
  const int64_t chunk = ChunkRows(m);
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t mm = std::min(chunk, m - i0);
    const dnnl::matmul prim = Dnnl::Get().Blocked(MmKind::kBF16Blocked, mm, n, k, "bf16");
    thread_local std::vector<uint16_t> xb;
    uint16_t* xbp = GrowScratch(xb, static_cast<size_t>(mm * k));
    const float* xs = x + i0 * k;
    ParallelForOmp(mm, [&](int64_t b, int64_t e) {
      for (int64_t i = b * k; i < e * k; ++i) xbp[i] = F32ToBf16(xs[i]);
    });
    SyncGemmThreads();
    Dnnl::Get().Run(prim, MmKind::kBF16Blocked, mm, n, k, xb.data(), w.data, y + i0 * n);
  }
  AddBiasParallel(y, bias, m, n);
}

void GemmBF16(const float* x, const uint16_t* w, const float* bias, float* y, int64_t m, int64_t n,
              int64_t k) {
  if (m == 0 || n == 0) return;
  const bool fast = Cpu().avx512_full();
  if (fast && m <= kSmallM) {
    std::vector<uint16_t> xb(static_cast<size_t>(m * k));
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = F32ToBf16(x[i]);
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvBf16Avx512(xb.data(), w, y, m, n, k, b * kRowBlock, std::min(n, e * kRowBlock));
    });
    AddBias(y, bias, m, n);
    return;
  }
  if (Cpu().avx2_kernels() && m <= kSmallM) {
    std::vector<float> xr;
    RoundToBf16(x, m * k, &xr);
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvBf16Avx2(xr.data(), w, y, m, n, k, b * kRowBlock, std::min(n, e * kRowBlock));
    });
    AddBias(y, bias, m, n);
    return;
  }
  if (!fast) {  // AVX2 and portable: f32 panels of W through oneDNN (core/dequant_gemm.h)
    GemmBf16ViaF32(x, w, bias, y, m, n, k);
    return;
  }
  const int64_t chunk = ChunkRows(m);
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t mm = std::min(chunk, m - i0);
    dnnl::matmul prim;
    if (Dnnl::Get().Find(MmKind::kBF16, mm, n, k, &prim)) {
      thread_local std::vector<uint16_t> xb;
      uint16_t* xbp = GrowScratch(xb, static_cast<size_t>(mm * k));
      const float* xs = x + i0 * k;
      ParallelForOmp(mm, [&](int64_t b, int64_t e) {
        for (int64_t i = b * k; i < e * k; ++i) xbp[i] = F32ToBf16(xs[i]);
      });
      SyncGemmThreads();
      Dnnl::Get().Run(prim, MmKind::kBF16, mm, n, k, xb.data(), w, y + i0 * n);
    } else {  // (no such oneDNN matmul) activations rounded to bf16 like the fast path
      GemmBf16ViaF32(x + i0 * k, w, nullptr, y + i0 * n, mm, n, k);
    }
  }
  AddBias(y, bias, m, n);
}

void Q8Matrix::Allocate(int64_t rows, int64_t cols) {
  n = rows;
  k = cols;
  q_own.assign(static_cast<size_t>(n * k), 0);
  scale_own.assign(static_cast<size_t>(n), 0.0f);
  sum_own.assign(static_cast<size_t>(n), 0);
  q = q_own.data();
  scale = scale_own.data();
  sum = sum_own.data();
}

void QuantizeQ8Rows(const float* w, int64_t rows, int64_t k, int8_t* q, float* scale,
                    int32_t* sum) {
  QuantizeRows(w, rows, k, q, scale);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t j = 0; j < k; ++j) s += q[r * k + j];
    sum[r] = s;
  }
}

Q8Matrix QuantizeQ8(const float* w, int64_t n, int64_t k) {
  Q8Matrix m;
  m.Allocate(n, k);
  QuantizeQ8Rows(w, n, k, m.q_own.data(), m.scale_own.data(), m.sum_own.data());
  return m;
}

namespace {

// W rows [r0, r1) as the large-m int8 GEMM multiplies them: per-row int8, row
// scales, and row sums (null: the activations go in as s8; set: as u8 = q + 128, the native VNNI
// order and ~5 % faster, with 128 * sum taken off in the rescaling pass).
struct Int8Panel {
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  const int32_t* sum = nullptr;
};

// The int8 GEMM for large m: rows of x quantized per row, oneDNN matmul (or exact f32 BLAS on the
// portable path) against `panel(r0, r1)` = W rows [r0, r1), which either points into a Q8Matrix
// or expands q4 rows into a scratch buffer. `u8`: every panel has row sums.
template <typename PanelFn>
void GemmInt8Large(const float* x, int64_t m, int64_t n, int64_t k, int64_t panel_rows,
                   const PanelFn& panel, const float* bias, const GemmEpilogue& ep, float* y,
                   bool u8) {
  const bool fast = Cpu().avx512_full();
  u8 = u8 && fast;
  const int64_t chunk = ChunkRows(m);
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t mm = std::min(chunk, m - i0);
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xs;
    int8_t* xqp = GrowScratch(xq, static_cast<size_t>(mm * k));
    float* xsp = GrowScratch(xs, static_cast<size_t>(mm));
    ParallelForOmp(mm, [&](int64_t b, int64_t e) {
      QuantizeRows(x + (i0 + b) * k, e - b, k, xqp + b * k, xsp + b);
      if (u8) ToU8(xqp + b * k, (e - b) * k);
    });
    float* yc = y + i0 * n;
    for (int64_t r0 = 0; r0 < n; r0 += panel_rows) {
      const int64_t np = std::min(panel_rows, n - r0);
      const Int8Panel pw = panel(r0, r0 + np);
      const MmKind kind = u8 ? MmKind::kU8 : MmKind::kS8;
      dnnl::matmul prim;
      if (fast && Dnnl::Get().Find(kind, mm, np, k, &prim)) {
        thread_local std::vector<int32_t> acc;
        int32_t* accp = GrowScratch(acc, static_cast<size_t>(mm * np));
        SyncGemmThreads();
        Dnnl::Get().Run(prim, kind, mm, np, k, xqp, pw.q, accp);
        GemmEpilogue pe = ep;  // this panel's columns
        if (pe.gamma != nullptr) pe.gamma += r0;
        const float* pb = bias != nullptr ? bias + r0 : nullptr;
        ParallelForOmp(mm, [&](int64_t b, int64_t e) {
          RescaleFinish(accp, np, xsp, pw.scale, yc + r0, n, b, e, np, pb, pe,
                        u8 ? pw.sum : nullptr);
        });
      } else {
        // Portable (decode-sized products without the AVX2 kernels, or a shape oneDNN lacks):
        // exact integer products evaluated in f32 (|q| <= 127, so panels are exact), W widened
        // in panels of ~8 MB on the OpenMP team.
        std::vector<float> xf(static_cast<size_t>(mm * k));
        ParallelForOmp(mm, [&](int64_t b, int64_t e) {
          for (int64_t i = b * k; i < e * k; ++i)
            xf[i] = u8 ? static_cast<float>(static_cast<uint8_t>(xqp[i])) - 128.0f : xqp[i];
        });
        const int64_t kPanel = std::max<int64_t>(256, (int64_t{8} << 20) / (4 * k));
        std::vector<float> wf(static_cast<size_t>(std::min(np, kPanel) * k));
        std::vector<float> v(static_cast<size_t>(mm * np));
        for (int64_t p0 = 0; p0 < np; p0 += kPanel) {
          const int64_t rn = std::min(kPanel, np - p0);
          ParallelForOmp(rn, [&](int64_t b, int64_t e) {
            for (int64_t i = b * k; i < e * k; ++i) wf[i] = pw.q[p0 * k + i];
          });
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(mm),
                      static_cast<int>(rn), static_cast<int>(k), 1.0f, xf.data(),
                      static_cast<int>(k), wf.data(), static_cast<int>(k), 0.0f, v.data() + p0,
                      static_cast<int>(np));
        }
        for (int64_t i = 0; i < mm; ++i)
          for (int64_t j = 0; j < np; ++j) v[i * np + j] *= xs[i] * pw.scale[j];
        GemmEpilogue pe = ep;
        if (pe.gamma != nullptr) pe.gamma += r0;
        FinishRows(v.data(), np, yc + r0, n, 0, mm, np, bias != nullptr ? bias + r0 : nullptr, pe);
      }
    }
  }
}

}  // namespace

bool GemmQ8MakesRows(const Q8Matrix& w, int64_t m) {
  return w.packed != nullptr && m > kSmallM;
}

namespace {

// GemmQ8's packed many-row path on x's rows, or (x null) on the rows `make` writes.
void GemmQ8ManyRows(const float* x, const RowMaker& make, const Q8Matrix& w, const float* bias,
                    float* y, int64_t m, const GemmEpilogue& ep) {
  thread_local std::vector<uint8_t> xu;
  thread_local std::vector<float> xs;
  const int64_t n = w.n, k = w.k, kp = w.packed->kp;
  uint8_t* xup = GrowScratch(xu, static_cast<size_t>(m * kp));
  float* xsp = GrowScratch(xs, static_cast<size_t>(m));
  ParallelForOmp(m, [&](int64_t b, int64_t e) {
    if (x != nullptr) {
      QuantizeRowsU8Into(x, b, e, k, kp, xup, xsp);
      return;
    }
    // 8 rows (32 KB at k = 1024) at a time: made and quantized while in L1.
    constexpr int64_t kRowsAtOnce = 8;
    thread_local std::vector<float> rows;
    float* buf = GrowScratch(rows, static_cast<size_t>(kRowsAtOnce * k));
    for (int64_t r0 = b; r0 < e; r0 += kRowsAtOnce) {
      const int64_t r1 = std::min(e, r0 + kRowsAtOnce);
      make(r0, r1, buf);
      QuantizeRowsU8Into(buf, 0, r1 - r0, k, kp, xup + r0 * kp, xsp + r0);
    }
  });
  ParallelForOmp((n + 63) / 64, [&](int64_t b, int64_t e) {
    GemmQ8BlockedRows(xup, xsp, w, m, b, e, bias, ep, y);
  });
}

}  // namespace

void GemmQ8Made(const RowMaker& make, const Q8Matrix& w, const float* bias, float* y, int64_t m,
                const GemmEpilogue& ep) {
  if (!GemmQ8MakesRows(w, m))
    throw Error(ErrorCode::kInternal, "GemmQ8Made needs packed weights and more than " +
                                          std::to_string(kSmallM) + " rows");
  GemmQ8ManyRows(nullptr, make, w, bias, y, m, ep);
}

void GemmQ8(const float* x, const Q8Matrix& w, const float* bias, float* y, int64_t m,
            const GemmEpilogue& ep) {
  const int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  if (w.packed && m <= kSmallM) {
    std::vector<uint8_t> xu;
    std::vector<float> xs;
    QuantizeRowsU8Padded(x, m, k, w.packed->kp, &xu, &xs);
    float* out = ep.kind == GemmEpilogue::Kind::kAddScaled ? EpilogueScratch(m * n) : y;
    ThreadPool::Global().ParallelFor(
        (n + 63) / 64,
        [&](int64_t b, int64_t e) { GemvQ8Blocked(xu.data(), xs.data(), w, out, m, b, e); },
        kBlockGrain);
    FinishRows(out, n, y, n, 0, m, n, bias, ep);
    return;
  }
  if (w.packed) {  // many rows: u8 activations padded to kp, then GemmQ8BlockedRows
    GemmQ8ManyRows(x, nullptr, w, bias, y, m, ep);
    return;
  }
  if (Cpu().avx512_full() && m <= kSmallM) {
    std::vector<uint8_t> xu;
    std::vector<float> xs;
    QuantizeRowsU8(x, m, k, &xu, &xs);
    float* out = ep.kind == GemmEpilogue::Kind::kAddScaled ? EpilogueScratch(m * n) : y;
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvQ8Avx512(xu.data(), xs.data(), w, out, m, b * kRowBlock, std::min(n, e * kRowBlock));
    });
    FinishRows(out, n, y, n, 0, m, n, bias, ep);
    return;
  }
  if (Cpu().avx2_kernels() && m <= kSmallM) {
    thread_local Int8Act act;
    PrepareInt8Act(x, m, k, false, &act);
    const Int8Act& a = act;
    float* out = ep.kind == GemmEpilogue::Kind::kAddScaled ? EpilogueScratch(m * n) : y;
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvQ8Avx2(a.q.data(), a.s.data(), w, out, m, b * kRowBlock, std::min(n, e * kRowBlock));
    });
    FinishRows(out, n, y, n, 0, m, n, bias, ep);
    return;
  }
  if (m > kSmallM && !Cpu().avx512_full()) {  // AVX2 and portable (core/dequant_gemm.h)
    GemmQ8ViaF32(x, w, bias, y, m, ep);
    return;
  }
  GemmInt8Large(
      x, m, n, k, n,
      [&](int64_t r0, int64_t) {
        return Int8Panel{w.q + r0 * k, w.scale + r0, w.sum + r0};
      },
      bias, ep, y, true);
}

void Q4Matrix::Allocate(int64_t rows, int64_t cols) {
  n = rows;
  k = cols;
  q_own.assign(static_cast<size_t>(n * k / 2), 0);
  scale_own.assign(static_cast<size_t>(n * (k / kQ4Block)), 0);
  comp_own.assign(static_cast<size_t>(n), 0.0f);
  q = q_own.data();
  scale = scale_own.data();
  comp = comp_own.data();
}

void QuantizeQ4Rows(const float* w, int64_t rows, int64_t k, uint8_t* qdst, uint16_t* scale,
                    float* comp) {
  if (k % 64 != 0)
    throw Error(ErrorCode::kUnsupported,
                "q4 needs an input size divisible by 64, got " + std::to_string(k));
  const int64_t nb = k / kQ4Block;
  std::vector<int8_t> q(static_cast<size_t>(k));
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * k;
    double c = 0;
    for (int64_t b = 0; b < nb; ++b) {
      // Symmetric 4-bit: the value of largest magnitude maps to -8 (ggml Q4_0 style); the scale
      // is stored as f16 and the values are rounded with the stored scale.
      float amax = 0, maxv = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) {
        const float v = wr[b * kQ4Block + j];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          maxv = v;
        }
      }
      const uint16_t sh = F32ToF16(maxv / -8.0f);
      const float s = F16ToF32(sh);
      const float inv = s != 0 ? 1.0f / s : 0.0f;
      int32_t qsum = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) {
        const int v =
            static_cast<int>(std::lrintf(std::clamp(wr[b * kQ4Block + j] * inv, -8.0f, 7.0f)));
        q[b * kQ4Block + j] = static_cast<int8_t>(v);
        qsum += v;
      }
      scale[r * nb + b] = sh;
      c += 128.0 * static_cast<double>(s) * qsum;
    }
    comp[r] = static_cast<float>(c);
    uint8_t* dst = qdst + r * (k / 2);
    for (int64_t g = 0; g < k / 64; ++g)
      for (int64_t j = 0; j < 32; ++j)
        dst[g * 32 + j] =
            static_cast<uint8_t>((q[g * 64 + j] + 8) | ((q[g * 64 + j + 32] + 8) << 4));
  }
}

Q4Matrix QuantizeQ4(const float* w, int64_t n, int64_t k) {
  if (k % 64 != 0)
    throw Error(ErrorCode::kUnsupported,
                "q4 needs an input size divisible by 64, got " + std::to_string(k));
  Q4Matrix m;
  m.Allocate(n, k);
  QuantizeQ4Rows(w, n, k, m.q_own.data(), m.scale_own.data(), m.comp_own.data());
  return m;
}

float Q4Value(const Q4Matrix& w, int64_t row, int64_t col) {
  const int64_t g = col / 64, j = col % 64;
  const uint8_t byte = w.q[row * (w.k / 2) + g * 32 + (j % 32)];
  const int q = (j < 32 ? (byte & 0x0f) : (byte >> 4)) - 8;
  return static_cast<float>(q) * F16ToF32(w.scale[row * (w.k / kQ4Block) + col / kQ4Block]);
}

void ExpandQ4Rows(const Q4Matrix& w, int64_t r0, int64_t r1, int8_t* q, float* scale) {
  if (Cpu().avx512_full()) {
    ExpandQ4RowsAvx512(w, r0, r1, q, scale);
  } else {
    ExpandQ4RowsGeneric(w, r0, r1, q, scale);
  }
}

// ---------------------------------------------------------------------------------------------
// q4 in the blocked layout (PackQ4): per 64 outputs, per block of 32 inputs, kQ4BlockedBytes:
// the 64 outputs' f16 scales (128 bytes), then 4 groups of 8 inputs x 4 chunks of 16 outputs x
// 64 bytes; in a chunk, output o's 4 bytes t = 0..3 hold q[o][8g + t] + 8 (low nibble) and
// q[o][8g + 4 + t] + 8 (high nibble). One AND and one shift+AND give two vpdpbusd operands (16
// outputs x 4 inputs each) against broadcast activations; a decode step reads the matrix front to
// back, scales with their nibbles.

struct PackedQ4 {
  int64_t n = 0, k = 0, np = 0, kp = 0;  // np: n padded to 64 (kp = k)
  const uint8_t* data = nullptr;
  LargeBuffer<uint8_t> owned;
};

namespace {

constexpr int64_t kQ4BlockedBytes = 128 + 32 * 64 / 2;  // one 64 x 32 block: scales + nibbles

// Output blocks [b0, b1) of w (rows) into the blocked array `out`.
void BlockQ4Rows(const Q4Matrix& w, int64_t b0, int64_t b1, uint8_t* out) {
  const int64_t nb = w.k / kQ4Block;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t s = 0; s < nb; ++s) {
      uint8_t* blk = out + (b * nb + s) * kQ4BlockedBytes;
      std::memset(blk, 0, kQ4BlockedBytes);
      auto* sc = reinterpret_cast<uint16_t*>(blk);
      for (int64_t o = 0; o < 64 && b * 64 + o < w.n; ++o) {
        const int64_t r = b * 64 + o;
        sc[o] = w.scale[r * nb + s];
        // Block s is the low (even s) or high nibbles of the row's 32 bytes at (s / 2) * 32.
        const uint8_t* src = w.q + r * (w.k / 2) + (s / 2) * 32;
        uint8_t v[kQ4Block];
        for (int64_t i = 0; i < kQ4Block; ++i) v[i] = s % 2 == 0 ? (src[i] & 0x0f) : (src[i] >> 4);
        for (int64_t g = 0; g < 4; ++g)
          for (int64_t t = 0; t < 4; ++t)
            blk[128 + g * 256 + (o / 16) * 64 + (o % 16) * 4 + t] =
                static_cast<uint8_t>(v[8 * g + t] | v[8 * g + 4 + t] << 4);
      }
    }
}

// Activations for the blocked kernel: per-row int8 (x / scale) and each block's sum.
struct Q4BlockedAct {
  std::vector<int8_t> q;     // [m, k]
  std::vector<int32_t> sum;  // [m, k / 32]
  std::vector<float> scale;  // [m]
};

void PrepareQ4BlockedAct(const float* x, int64_t m, int64_t k, Q4BlockedAct* a) {
  const int64_t nb = k / kQ4Block;
  a->q.resize(static_cast<size_t>(m * k));
  a->scale.resize(static_cast<size_t>(m));
  a->sum.resize(static_cast<size_t>(m * nb));
  int8_t* q = a->q.data();
  float* sc = a->scale.data();
  int32_t* sum = a->sum.data();
  auto rows = [&](int64_t b, int64_t e) {
    QuantizeRows(x + b * k, e - b, k, q + b * k, sc + b);
    for (int64_t i = b * nb; i < e * nb; ++i) {
      int32_t t = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) t += q[i * kQ4Block + j];
      sum[i] = t;
    }
  };
  if (m <= kSmallM) {
    rows(0, m);
  } else {
    ThreadPool::Global().ParallelFor(m, rows);
  }
}

// Activation rows per blocked q4 tile: each unpacked weight vector feeds 4 rows' vpdpbusd (16
// accumulators + 8 broadcast activations, no spills). 4 instead of 2: prefill +4 % (1B q4, 512
// and 2048 tokens, session 12). (Every group passes over a 64-output block while it is in L2,
// so DRAM reads each weight once either way; the gain is fewer unpacks per product.)
constexpr int kQ4BlockedGroup = 4;
// Software prefetch distance in blocks (6.75 KB): the q4 kernel spends more instructions per
// byte than the q8/bf16 ones, so it must ask earlier to keep enough lines in flight. Measured on
// a 144 MiB matrix from DRAM: 2 blocks peaked at ~71 GB/s, 6 at 77-84 GB/s in the same minutes
// (equal when the machine's bandwidth is lower).
constexpr int64_t kQ4Pf = 6;

template <int M>
__attribute__((target(PLM_AVX512 ",avx512vnni,f16c"), always_inline)) inline void Q4BlockTile(
    const Q4BlockedAct& a, const Q4Matrix& w, float* y, int64_t blk, int64_t i0, int64_t l2) {
  const int64_t k = w.k, n = w.n, nb = k / kQ4Block;
  const uint8_t* wb = w.packed->data + blk * nb * kQ4BlockedBytes;
  const __m512i mask = _mm512_set1_epi8(0x0f);
  __m512 tot[M][4];
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < 4; ++c) tot[i][c] = _mm512_setzero_ps();
  for (int64_t s = 0; s < nb; ++s) {
    const uint8_t* sb = wb + s * kQ4BlockedBytes;
    // The accumulators start at -8 sum x: sum (q + 8) x - 8 sum x = sum q x, exactly in int32.
    __m512i acc[M][4];
    for (int i = 0; i < M; ++i) {
      const __m512i off = _mm512_set1_epi32(-8 * a.sum[(i0 + i) * nb + s]);
      for (int c = 0; c < 4; ++c) acc[i][c] = off;
    }
    for (int64_t g = 0; g < 4; ++g) {
      __m512i xl[M], xh[M];
      for (int i = 0; i < M; ++i) {
        int32_t lo4, hi4;
        const int8_t* xp = a.q.data() + (i0 + i) * k + s * kQ4Block + 8 * g;
        std::memcpy(&lo4, xp, 4);
        std::memcpy(&hi4, xp + 4, 4);
        xl[i] = _mm512_set1_epi32(lo4);
        xh[i] = _mm512_set1_epi32(hi4);
      }
      const uint8_t* gp = sb + 128 + g * 256;
      _mm_prefetch(reinterpret_cast<const char*>(gp + kQ4Pf * kQ4BlockedBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(gp + kQ4Pf * kQ4BlockedBytes + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(gp + kQ4Pf * kQ4BlockedBytes + 128), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(gp + kQ4Pf * kQ4BlockedBytes + 192), _MM_HINT_T0);
      if (l2 != 0)
        for (int c = 0; c < 4; ++c)
          _mm_prefetch(reinterpret_cast<const char*>(gp + l2 + 64 * c), _MM_HINT_T1);
      for (int c = 0; c < 4; ++c) {
        const __m512i pk = _mm512_loadu_si512(gp + 64 * c);
        const __m512i lo = _mm512_and_si512(pk, mask);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(pk, 4), mask);
        for (int i = 0; i < M; ++i) {
          acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], lo, xl[i]);
          acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], hi, xh[i]);
        }
      }
    }
    _mm_prefetch(reinterpret_cast<const char*>(sb + kQ4Pf * kQ4BlockedBytes - 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(sb + kQ4Pf * kQ4BlockedBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(sb + kQ4Pf * kQ4BlockedBytes + 64), _MM_HINT_T0);
    if (l2 != 0)
      for (int c = -1; c < 2; ++c)
        _mm_prefetch(reinterpret_cast<const char*>(sb + l2 + 64 * c), _MM_HINT_T1);
    for (int c = 0; c < 4; ++c) {
      const __m512 sc =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + 32 * c)));
      for (int i = 0; i < M; ++i)
        tot[i][c] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(acc[i][c]), tot[i][c]);
    }
  }
  for (int c = 0; c < 4; ++c) {
    const int64_t col = blk * 64 + 16 * c;
    if (col >= n) break;
    const __mmask16 mk = n - col >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (n - col)) - 1u);
    for (int i = 0; i < M; ++i)
      _mm512_mask_storeu_ps(y + (i0 + i) * n + col, mk,
                            _mm512_mul_ps(_mm512_set1_ps(a.scale[i0 + i]), tot[i][c]));
  }
}

// Output blocks [b0, b1) (64 outputs each) of a packed q4 matrix against m activation rows.
__attribute__((target(PLM_AVX512 ",avx512vnni,f16c"))) void GemvQ4Blocked(const Q4BlockedAct& a,
                                                                          const Q4Matrix& w,
                                                                          float* y, int64_t m,
                                                                          int64_t b0, int64_t b1) {
  const int64_t l2 = StreamL2AheadBytes();
  for (int64_t blk = b0; blk < b1; ++blk)
    for (RowGroups g(m, kQ4BlockedGroup); g.Next();) {
#define PLM_CALL(M) Q4BlockTile<M>(a, w, y, blk, g.i0, l2)
      PLM_SWITCH_M(kQ4BlockedGroup, g.size, PLM_CALL)
#undef PLM_CALL
    }
}

}  // namespace

int64_t Q4BlockedBytes(int64_t n, int64_t k) {
  return (n + 63) / 64 * (k / kQ4Block) * kQ4BlockedBytes;
}

void BlockQ4(const Q4Matrix& w, uint8_t* out) {
  ParallelForOmp((w.n + 63) / 64, [&](int64_t b0, int64_t b1) { BlockQ4Rows(w, b0, b1, out); });
}

void UnblockQ4(const uint8_t* blocked, int64_t n, int64_t k, uint8_t* q, uint16_t* scale) {
  const int64_t nb = k / kQ4Block;
  std::memset(q, 0, static_cast<size_t>(n * k / 2));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t b = r / 64, o = r % 64;
    for (int64_t s = 0; s < nb; ++s) {
      const uint8_t* blk = blocked + (b * nb + s) * kQ4BlockedBytes;
      std::memcpy(scale + r * nb + s, blk + 2 * o, 2);
      uint8_t* dst = q + r * (k / 2) + (s / 2) * 32;  // low (even s) or high nibbles
      for (int64_t i = 0; i < kQ4Block; ++i) {
        const uint8_t byte = blk[128 + (i / 8) * 256 + (o / 16) * 64 + (o % 16) * 4 + i % 4];
        const uint8_t nib = i % 8 < 4 ? (byte & 0x0f) : (byte >> 4);
        dst[i] |= static_cast<uint8_t>(s % 2 == 0 ? nib : nib << 4);
      }
    }
  }
}

size_t Q4Matrix::owned_bytes() const {
  return q_own.size() + scale_own.size() * 2 + comp_own.size() * 4 +
         (packed ? packed->owned.get_deleter().bytes : 0);
}

bool PackQ4(Q4Matrix* w) {
  if (w->q == nullptr || w->packed || !Cpu().avx512_full()) return false;
  auto owned = NewLargeBuffer<uint8_t>(static_cast<size_t>(Q4BlockedBytes(w->n, w->k)));
  BlockQ4(*w, owned.get());
  uint8_t* out = owned.get();
  SetBlocked<PackedQ4>(w, out, std::move(owned), kQ4Block);
  w->scale = nullptr;
  std::vector<uint16_t>().swap(w->scale_own);
  return true;
}

bool UseBlockedQ4(Q4Matrix* w, const uint8_t* blocked) {
  if (w->packed || !Cpu().avx512_full()) return false;
  SetBlocked<PackedQ4>(w, blocked, LargeBuffer<uint8_t>(), kQ4Block);
  w->scale = nullptr;
  std::vector<uint16_t>().swap(w->scale_own);
  return true;
}

void GemmQ4(const float* x, const Q4Matrix& w, const float* bias, float* y, int64_t m,
            const GemmEpilogue& ep) {
  const int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  if (w.packed) {
    // The blocked kernel for every m: each 64-output block stays in L2 while all activation
    // rows pass over it (measured: as fast as expanding to int8 for oneDNN at 512 tokens).
    float* out = ep.kind == GemmEpilogue::Kind::kAddScaled ? EpilogueScratch(m * n) : y;
    thread_local Q4BlockedAct act;
    PrepareQ4BlockedAct(x, m, k, &act);
    const Q4BlockedAct& a = act;
    ThreadPool& pool = ThreadPool::Global();
    pool.ParallelFor((n + 63) / 64,
                     [&](int64_t b, int64_t e) { GemvQ4Blocked(a, w, out, m, b, e); }, kBlockGrain);
    if (m <= kSmallM) {
      FinishRows(out, n, y, n, 0, m, n, bias, ep);
    } else {
      pool.ParallelFor(m,
                       [&](int64_t b, int64_t e) { FinishRows(out, n, y, n, b, e, n, bias, ep); });
    }
    return;
  }
  if (m > kSmallM && Cpu().avx2_kernels()) {
    // AVX2: 4-bit products summed in int16 (core/gemm_q4_avx2.h), the decode kernels' arithmetic.
    thread_local Int8Act act;
    PrepareInt8Act(x, m, k, true, &act, true);
    const Int8Act& a = act;
    float* out = ep.kind == GemmEpilogue::Kind::kAddScaled ? EpilogueScratch(m * n) : y;
    ParallelForOmp((n + 15) / 16, [&](int64_t b, int64_t e) {
      GemmQ4RowsAvx2(a.q.data(), a.s.data(), a.nsum.data(), w, out, m, b * 16, std::min(n, e * 16));
    });
    ParallelForOmp(m, [&](int64_t b, int64_t e) { FinishRows(out, n, y, n, b, e, n, bias, ep); });
    return;
  }
  if (m > kSmallM && !Cpu().avx512_full()) {  // portable (core/dequant_gemm.h)
    GemmQ4ViaF32(x, w, bias, y, m, ep);
    return;
  }
  if (m > kSmallM) {
    // Panels of W expanded to int8 just before they are multiplied: up to 32 MB of int8 (oneDNN's
    // s8 matmul is several times slower on narrow panels of a few hundred rows).
    const int64_t kPanelRows = std::max<int64_t>(2048, (int64_t{32} << 20) / k);
    thread_local std::vector<int8_t> pq;
    thread_local std::vector<float> ps;
    int8_t* pqp = GrowScratch(pq, static_cast<size_t>(std::min(n, kPanelRows) * k));
    float* psp = GrowScratch(ps, static_cast<size_t>(std::min(n, kPanelRows)));
    GemmInt8Large(
        x, m, n, k, kPanelRows,
        [&](int64_t r0, int64_t r1) {
          ParallelForOmp(r1 - r0, [&](int64_t b, int64_t e) {
            ExpandQ4Rows(w, r0 + b, r0 + e, pqp + b * k, psp + b);
          });
          return Int8Panel{pqp, psp, nullptr};
        },
        bias, ep, y, false);
    return;
  }
  // The small-m kernels write x W^T; bias and epilogue follow (into y from a scratch copy when
  // the epilogue accumulates into y).
  float* const yout = y;
  if (ep.kind == GemmEpilogue::Kind::kAddScaled) y = EpilogueScratch(m * n);
  if (Cpu().avx512_full()) {
    thread_local Q4Act act;
    PrepareQ4Act(x, m, k, &act);
    const Q4Act& a = act;
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvQ4Avx512(a, w, y, m, b * kRowBlock, std::min(n, e * kRowBlock));
    });
    FinishRows(y, n, yout, n, 0, m, n, bias, ep);
    return;
  }
  if (Cpu().avx2_kernels()) {
    thread_local Int8Act act;
    PrepareInt8Act(x, m, k, true, &act);
    const Int8Act& a = act;
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvQ4Avx2(a.q.data(), a.s.data(), a.nsum.data(), w, y, m, b * kRowBlock,
                 std::min(n, e * kRowBlock));
    });
    FinishRows(y, n, yout, n, 0, m, n, bias, ep);
    return;
  }
  std::vector<uint8_t> xu;
  std::vector<float> xs;
  QuantizeRowsU8(x, m, k, &xu, &xs);
  // Portable: exact block dot products of the same int8 activations.
  const int64_t nb = k / kQ4Block;
  std::vector<float> sf(static_cast<size_t>(nb));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < nb; ++b) sf[b] = F16ToF32(w.scale[r * nb + b]);
    for (int64_t i = 0; i < m; ++i) {
      double acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t d = 0;
        for (int64_t j = b * kQ4Block; j < (b + 1) * kQ4Block; ++j) {
          const uint8_t byte = w.q[r * (k / 2) + (j / 64) * 32 + (j % 32)];
          d += (static_cast<int>(xu[i * k + j]) - 128) *
               ((j % 64 < 32 ? (byte & 0x0f) : (byte >> 4)) - 8);
        }
        acc += static_cast<double>(sf[b]) * d;
      }
      y[i * n + r] = xs[i] * static_cast<float>(acc);
    }
  }
  FinishRows(y, n, yout, n, 0, m, n, bias, ep);
}

bool GemvMany(const float* x, int64_t m, int64_t k, const std::vector<GemvJob>& jobs) {
  const bool avx2 = Cpu().avx2_kernels();
  if (jobs.empty() || m > kSmallM || m <= 0 || !(Cpu().avx512_full() || avx2)) return false;
  // 0: bf16, 1: q8 rows, 2: q4, 3: q8 blocked (tasks of 64 outputs)
  // 4: q4 blocked, 5: bf16 blocked (tasks of 64 outputs)
  auto kind_of = [](const GemvJob& g) {
    return g.bf16p  ? 5
           : g.bf16 ? 0
           : g.q8   ? (g.q8->packed ? 3 : 1)
           : g.q4   ? (g.q4->packed ? 4 : 2)
                    : -1;
  };
  const int kind = kind_of(jobs[0]);
  if (avx2 && kind > 2) return false;              // (no blocked layouts without AVX-512)
  std::vector<int64_t> first(jobs.size() + 1, 0);  // first task of each job
  for (size_t j = 0; j < jobs.size(); ++j) {
    const GemvJob& g = jobs[j];
    if (kind_of(g) != kind) return false;
    if ((g.q8 && g.q8->k != k) || (g.q4 && g.q4->k != k)) return false;
    if (kind == 3 && g.q8->packed->kp != jobs[0].q8->packed->kp) return false;
    if (kind == 5 && (g.bf16p->k != k || g.bf16p->kp != jobs[0].bf16p->kp)) return false;
    const int64_t unit = kind >= 3 ? 64 : kRowBlock;
    first[j + 1] = first[j] + (g.n + unit - 1) / unit;
  }
  thread_local std::vector<uint16_t> xb;
  thread_local std::vector<uint8_t> xu;
  thread_local std::vector<float> xs;
  thread_local Q4Act act;
  thread_local Q4BlockedAct bact;
  thread_local Int8Act iact;
  thread_local std::vector<float> xr;
  if (avx2) {
    if (kind == 0) {
      RoundToBf16(x, m * k, &xr);
    } else {
      PrepareInt8Act(x, m, k, kind == 2, &iact);
    }
  } else if (kind == 0) {
    xb.resize(static_cast<size_t>(m * k));
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = F32ToBf16(x[i]);
  } else if (kind == 2) {
    PrepareQ4Act(x, m, k, &act);
  } else if (kind == 3) {
    QuantizeRowsU8Padded(x, m, k, jobs[0].q8->packed->kp, &xu, &xs);
  } else if (kind == 4) {
    PrepareQ4BlockedAct(x, m, k, &bact);
  } else if (kind == 5) {
    ToBf16Padded(x, m, k, jobs[0].bf16p->kp, &xb);
  } else {
    QuantizeRowsU8(x, m, k, &xu, &xs);
  }
  // thread_local names resolve per thread inside the lambda: pass the caller's buffers.
  const uint16_t* xbp = xb.data();
  const uint8_t* xup = xu.data();
  const float* xsp = xs.data();
  const Q4Act& a = act;
  const Q4BlockedAct& ba = bact;
  const Int8Act& ia = iact;
  const float* xrp = xr.data();
  ThreadPool::Global().ParallelFor(
      first.back(),
      [&](int64_t b, int64_t e) {
        size_t j = 0;
        for (int64_t t = b; t < e; ++t) {
          while (first[j + 1] <= t) ++j;
          const GemvJob& g = jobs[j];
          if (kind == 3) {
            GemvQ8Blocked(xup, xsp, *g.q8, g.y, m, t - first[j], t - first[j] + 1);
            continue;
          }
          if (kind == 4) {
            GemvQ4Blocked(ba, *g.q4, g.y, m, t - first[j], t - first[j] + 1);
            continue;
          }
          if (kind == 5) {
            GemvBf16Blocked(xbp, *g.bf16p, g.y, m, t - first[j], t - first[j] + 1);
            continue;
          }
          const int64_t r0 = (t - first[j]) * kRowBlock, r1 = std::min(g.n, r0 + kRowBlock);
          if (avx2) {
            if (kind == 0) {
              GemvBf16Avx2(xrp, g.bf16, g.y, m, g.n, k, r0, r1);
            } else if (kind == 1) {
              GemvQ8Avx2(ia.q.data(), ia.s.data(), *g.q8, g.y, m, r0, r1);
            } else {
              GemvQ4Avx2(ia.q.data(), ia.s.data(), ia.nsum.data(), *g.q4, g.y, m, r0, r1);
            }
          } else if (kind == 0) {
            GemvBf16Avx512(xbp, g.bf16, g.y, m, g.n, k, r0, r1);
          } else if (kind == 1) {
            GemvQ8Avx512(xup, xsp, *g.q8, g.y, m, r0, r1);
          } else {
            GemvQ4Avx512(a, *g.q4, g.y, m, r0, r1);
          }
        }
      },
      kind >= 3 ? kBlockGrain : 0);
  for (const GemvJob& g : jobs) AddBias(g.y, g.bias, m, g.n);
  return true;
}

}  // namespace plm
