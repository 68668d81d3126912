#include "core/lowp_gemm.h"

#include <cblas.h>
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized through _mm512_undefined_*().
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "core/thread_pool.h"
#include "plm/error.h"

extern "C" void omp_set_num_threads(int);

namespace plm {

namespace {

constexpr int64_t kRowBlock = 16;  // W rows per parallel task in the small-m kernels
constexpr int64_t kChunkM = 1024;  // activation rows per oneDNN call (bounds temporaries)

// ---------------------------------------------------------------------------------------------
// oneDNN matmuls, cached per shape.

enum class MmKind { kBF16, kS8 };

struct Dnnl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  std::mutex mu;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t>, dnnl::matmul> cache;
  bool bf16_ok = true, s8_ok = true;

  static Dnnl& Get() {
    static Dnnl d;
    return d;
  }

  // Returns false when oneDNN has no implementation (then the caller falls back).
  // ldc: row stride of the output (>= n; a column slice of a wider output when larger).
  bool Find(MmKind kind, int64_t m, int64_t n, int64_t k, dnnl::matmul* out, int64_t ldc = 0) {
    if (ldc == 0) ldc = n;
    std::lock_guard<std::mutex> lock(mu);
    if ((kind == MmKind::kBF16 && !bf16_ok) || (kind == MmKind::kS8 && !s8_ok)) return false;
    auto key = std::make_tuple(static_cast<int>(kind), m, n, k, ldc);
    auto it = cache.find(key);
    if (it != cache.end()) {
      *out = it->second;
      return true;
    }
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt in = kind == MmKind::kBF16 ? dt::bf16 : dt::s8;
    const dt o = kind == MmKind::kBF16 ? dt::f32 : dt::s32;
    try {
      dnnl::memory::desc a({m, k}, in, tag::ab), b({k, n}, in, tag::ba), c({m, n}, o, {ldc, 1});
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), eng);
      const std::string impl = pd.impl_info_str();
      // Reference / gemm-based fallbacks are far slower than converting to f32 ourselves.
      if (impl.find("ref") != std::string::npos) throw std::runtime_error(impl);
      dnnl::matmul mm(pd);
      cache.emplace(key, mm);
      *out = mm;
      return true;
    } catch (const std::exception&) {
      (kind == MmKind::kBF16 ? bf16_ok : s8_ok) = false;
      return false;
    }
  }

  void Run(const dnnl::matmul& mm, MmKind kind, int64_t m, int64_t n, int64_t k, const void* a,
           const void* b, void* c, int64_t ldc = 0) {
    if (ldc == 0) ldc = n;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt in = kind == MmKind::kBF16 ? dt::bf16 : dt::s8;
    const dt o = kind == MmKind::kBF16 ? dt::f32 : dt::s32;
    dnnl::memory am({{m, k}, in, tag::ab}, eng, const_cast<void*>(a));
    dnnl::memory bm({{k, n}, in, tag::ba}, eng, const_cast<void*>(b));
    dnnl::memory cm({{m, n}, o, {ldc, 1}}, eng, c);
    dnnl::stream s(eng);
    mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
  }
};

void AddBias(float* y, const float* bias, int64_t m, int64_t n) {
  if (bias == nullptr) return;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[j];
}

// ---------------------------------------------------------------------------------------------
// bf16 kernels.

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void GemvBf16Avx512(
    const uint16_t* xb, const uint16_t* w, float* y, int64_t m, int64_t n, int64_t k, int64_t r0,
    int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = w + r * k;
    __m512 acc[kSmallM];
    for (int64_t i = 0; i < m; ++i) acc[i] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
      const __m512i wv = _mm512_loadu_si512(wr + j);
      for (int64_t i = 0; i < m; ++i) {
        const __m512i xv = _mm512_loadu_si512(xb + i * k + j);
        acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)xv, (__m512bh)wv);
      }
    }
    if (j < k) {
      const __mmask32 mk = (1u << (k - j)) - 1u;
      const __m512i wv = _mm512_maskz_loadu_epi16(mk, wr + j);
      for (int64_t i = 0; i < m; ++i) {
        const __m512i xv = _mm512_maskz_loadu_epi16(mk, xb + i * k + j);
        acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)xv, (__m512bh)wv);
      }
    }
    for (int64_t i = 0; i < m; ++i) y[i * n + r] = _mm512_reduce_add_ps(acc[i]);
  }
}

// Portable fallback: converts panels of W to f32 and multiplies with BLAS.
void GemmBf16Generic(const float* x, const uint16_t* w, float* y, int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kPanel = 256;
  std::vector<float> wf(static_cast<size_t>(std::min(n, kPanel) * k));
  for (int64_t r0 = 0; r0 < n; r0 += kPanel) {
    const int64_t rn = std::min(kPanel, n - r0);
    for (int64_t i = 0; i < rn * k; ++i) wf[i] = Bf16ToF32(w[r0 * k + i]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(rn),
                static_cast<int>(k), 1.0f, x, static_cast<int>(k), wf.data(), static_cast<int>(k),
                0.0f, y + r0, static_cast<int>(n));
  }
}

// ---------------------------------------------------------------------------------------------
// int8 helpers.

// Per-row symmetric int8 quantization of activations: q = round(x / s), s = max|x| / 127.
__attribute__((target_clones("avx512f", "default"))) void QuantizeRows(const float* x, int64_t m,
                                                                       int64_t k, int8_t* q,
                                                                       float* s) {
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

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"))) void GemvQ8Avx512(
    const uint8_t* xu, const float* xs, const Q8Matrix& w, float* y, int64_t m, int64_t r0,
    int64_t r1) {
  const int64_t k = w.k, n = w.n;
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* wr = w.q.data() + r * k;
    __m512i acc[kSmallM];
    for (int64_t i = 0; i < m; ++i) acc[i] = _mm512_setzero_si512();
    int64_t j = 0;
    for (; j + 64 <= k; j += 64) {
      const __m512i wv = _mm512_loadu_si512(wr + j);
      for (int64_t i = 0; i < m; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_loadu_si512(xu + i * k + j), wv);
    }
    if (j < k) {
      const __mmask64 mk = (k - j) >= 64 ? ~0ull : ((1ull << (k - j)) - 1ull);
      const __m512i wv = _mm512_maskz_loadu_epi8(mk, wr + j);
      for (int64_t i = 0; i < m; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_maskz_loadu_epi8(mk, xu + i * k + j), wv);
    }
    for (int64_t i = 0; i < m; ++i) {
      const int64_t dot = static_cast<int64_t>(_mm512_reduce_add_epi32(acc[i])) -
                          128 * static_cast<int64_t>(w.sum[r]);
      y[i * n + r] = xs[i] * w.scale[r] * static_cast<float>(dot);
    }
  }
}

// y[i, j] = xs[i] * ws[j] * acc[i, j] for rows [b, e).
__attribute__((target_clones("avx512f", "default"))) void Rescale(const int32_t* acc,
                                                                  const float* xs, const float* ws,
                                                                  float* y, int64_t b, int64_t e,
                                                                  int64_t n) {
  for (int64_t i = b; i < e; ++i) {
    const float sx = xs[i];
    for (int64_t j = 0; j < n; ++j) y[i * n + j] = sx * ws[j] * static_cast<float>(acc[i * n + j]);
  }
}

// x (m rows) quantized to u8 = q + 128 for VNNI (u8 x s8).
void QuantizeRowsU8(const float* x, int64_t m, int64_t k, std::vector<uint8_t>* xu,
                    std::vector<float>* xs) {
  std::vector<int8_t> q(static_cast<size_t>(m * k));
  xs->resize(static_cast<size_t>(m));
  QuantizeRows(x, m, k, q.data(), xs->data());
  xu->resize(q.size());
  for (size_t i = 0; i < q.size(); ++i) (*xu)[i] = static_cast<uint8_t>(q[i] + 128);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"))) void GemvQ4Avx512(
    const uint8_t* xu, const float* xs, const Q4Matrix& w, float* y, int64_t m, int64_t r0,
    int64_t r1) {
  const int64_t k = w.k, n = w.n, groups = k / 64;
  const __m256i lo_mask = _mm256_set1_epi8(0x0f);
  const __m512i eight = _mm512_set1_epi8(8);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = w.q.data() + r * (k / 2);
    const float* sr = w.scale.data() + r * (k / kQ4Block);
    __m512 acc[kSmallM];
    for (int64_t i = 0; i < m; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + g * 32));
      const __m256i lo = _mm256_and_si256(packed, lo_mask);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), lo_mask);
      const __m512i wv =
          _mm512_sub_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), eight);
      const __m512 sc = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(sr[2 * g])),
                                           _mm256_set1_ps(sr[2 * g + 1]), 1);
      for (int64_t i = 0; i < m; ++i) {
        const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                              _mm512_loadu_si512(xu + i * k + g * 64), wv);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sc, acc[i]);
      }
    }
    for (int64_t i = 0; i < m; ++i)
      y[i * n + r] = xs[i] * (_mm512_reduce_add_ps(acc[i]) - w.comp[r]);
  }
}

thread_local int g_omp_threads = 0;

}  // namespace

void SyncGemmThreads() {
  const int t = ThreadPool::Global().num_threads();
  if (t != g_omp_threads) {
    omp_set_num_threads(t);
    g_omp_threads = t;
  }
}

// ---------------------------------------------------------------------------------------------

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
  for (int64_t i0 = 0; i0 < m; i0 += kChunkM) {
    const int64_t mm = std::min(kChunkM, m - i0);
    dnnl::matmul prim;
    if (fast && Dnnl::Get().Find(MmKind::kBF16, mm, n, k, &prim)) {
      thread_local std::vector<uint16_t> xb;
      xb.resize(static_cast<size_t>(mm * k));
      const float* xs = x + i0 * k;
      uint16_t* xbp = xb.data();
      ParallelForOmp(mm, [&](int64_t b, int64_t e) {
        for (int64_t i = b * k; i < e * k; ++i) xbp[i] = F32ToBf16(xs[i]);
      });
      SyncGemmThreads();
      Dnnl::Get().Run(prim, MmKind::kBF16, mm, n, k, xb.data(), w, y + i0 * n);
    } else {
      // Activations rounded to bf16 like the fast path, so both paths agree closely.
      std::vector<float> xr(static_cast<size_t>(mm * k));
      const float* xs = x + i0 * k;
      for (size_t i = 0; i < xr.size(); ++i) xr[i] = Bf16ToF32(F32ToBf16(xs[i]));
      GemmBf16Generic(xr.data(), w, y + i0 * n, mm, n, k);
    }
  }
  AddBias(y, bias, m, n);
}

void FinishQ8(Q8Matrix* m) {
  m->sum.assign(static_cast<size_t>(m->n), 0);
  for (int64_t r = 0; r < m->n; ++r) {
    int32_t s = 0;
    for (int64_t j = 0; j < m->k; ++j) s += m->q[r * m->k + j];
    m->sum[r] = s;
  }
}

Q8Matrix QuantizeQ8(const float* w, int64_t n, int64_t k) {
  Q8Matrix m;
  m.n = n;
  m.k = k;
  m.q.resize(static_cast<size_t>(n * k));
  m.scale.resize(static_cast<size_t>(n));
  QuantizeRows(w, n, k, m.q.data(), m.scale.data());
  FinishQ8(&m);
  return m;
}

void GemmQ8(const float* x, const Q8Matrix& w, const float* bias, float* y, int64_t m) {
  const int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  const bool fast = Cpu().avx512_full();
  if (fast && m <= kSmallM) {
    std::vector<uint8_t> xu;
    std::vector<float> xs;
    QuantizeRowsU8(x, m, k, &xu, &xs);
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvQ8Avx512(xu.data(), xs.data(), w, y, m, b * kRowBlock, std::min(n, e * kRowBlock));
    });
    AddBias(y, bias, m, n);
    return;
  }
  for (int64_t i0 = 0; i0 < m; i0 += kChunkM) {
    const int64_t mm = std::min(kChunkM, m - i0);
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xs;
    xq.resize(static_cast<size_t>(mm * k));
    xs.resize(static_cast<size_t>(mm));
    int8_t* xqp = xq.data();
    float* xsp = xs.data();
    ParallelForOmp(mm, [&](int64_t b, int64_t e) {
      QuantizeRows(x + (i0 + b) * k, e - b, k, xqp + b * k, xsp + b);
    });
    float* yc = y + i0 * n;
    dnnl::matmul prim;
    if (fast && Dnnl::Get().Find(MmKind::kS8, mm, n, k, &prim)) {
      thread_local std::vector<int32_t> acc;
      acc.resize(static_cast<size_t>(mm * n));
      SyncGemmThreads();
      Dnnl::Get().Run(prim, MmKind::kS8, mm, n, k, xq.data(), w.q.data(), acc.data());
      const int32_t* accp = acc.data();
      ParallelForOmp(
          mm, [&](int64_t b, int64_t e) { Rescale(accp, xsp, w.scale.data(), yc, b, e, n); });
    } else {
      // Portable: exact integer products evaluated in f32 (|q| <= 127, so panels are exact).
      std::vector<float> xf(xq.size());
      for (size_t i = 0; i < xq.size(); ++i) xf[i] = xq[i];
      constexpr int64_t kPanel = 256;
      std::vector<float> wf(static_cast<size_t>(std::min(n, kPanel) * k));
      for (int64_t r0 = 0; r0 < n; r0 += kPanel) {
        const int64_t rn = std::min(kPanel, n - r0);
        for (int64_t i = 0; i < rn * k; ++i) wf[i] = w.q[r0 * k + i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(mm),
                    static_cast<int>(rn), static_cast<int>(k), 1.0f, xf.data(), static_cast<int>(k),
                    wf.data(), static_cast<int>(k), 0.0f, yc + r0, static_cast<int>(n));
      }
      for (int64_t i = 0; i < mm; ++i)
        for (int64_t j = 0; j < n; ++j) yc[i * n + j] *= xs[i] * w.scale[j];
    }
  }
  AddBias(y, bias, m, n);
}

Q4Matrix QuantizeQ4(const float* w, int64_t n, int64_t k) {
  if (k % 64 != 0)
    throw Error(ErrorCode::kUnsupported,
                "q4 needs an input size divisible by 64, got " + std::to_string(k));
  Q4Matrix m;
  m.n = n;
  m.k = k;
  m.q.assign(static_cast<size_t>(n * k / 2), 0);
  m.scale.resize(static_cast<size_t>(n * k / kQ4Block));
  m.comp.resize(static_cast<size_t>(n));
  std::vector<int8_t> q(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    const float* wr = w + r * k;
    double comp = 0;
    for (int64_t b = 0; b < k / kQ4Block; ++b) {
      // Symmetric 4-bit: the value of largest magnitude maps to -8 (ggml Q4_0 style).
      float amax = 0, maxv = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) {
        const float v = wr[b * kQ4Block + j];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          maxv = v;
        }
      }
      const float s = maxv / -8.0f;
      const float inv = s != 0 ? 1.0f / s : 0.0f;
      int32_t qsum = 0;
      for (int64_t j = 0; j < kQ4Block; ++j) {
        const int v =
            static_cast<int>(std::lrintf(std::clamp(wr[b * kQ4Block + j] * inv, -8.0f, 7.0f)));
        q[b * kQ4Block + j] = static_cast<int8_t>(v);
        qsum += v;
      }
      m.scale[r * (k / kQ4Block) + b] = s;
      comp += 128.0 * static_cast<double>(s) * qsum;
    }
    m.comp[r] = static_cast<float>(comp);
    uint8_t* dst = m.q.data() + r * (k / 2);
    for (int64_t g = 0; g < k / 64; ++g)
      for (int64_t j = 0; j < 32; ++j)
        dst[g * 32 + j] =
            static_cast<uint8_t>((q[g * 64 + j] + 8) | ((q[g * 64 + j + 32] + 8) << 4));
  }
  // Per-row int8 copy for large-m GEMMs (oneDNN int8 matmul).
  std::vector<float> row(static_cast<size_t>(k));
  m.expanded.n = n;
  m.expanded.k = k;
  m.expanded.q.resize(static_cast<size_t>(n * k));
  m.expanded.scale.resize(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) row[j] = Q4Value(m, r, j);
    QuantizeRows(row.data(), 1, k, m.expanded.q.data() + r * k, m.expanded.scale.data() + r);
  }
  FinishQ8(&m.expanded);
  return m;
}

float Q4Value(const Q4Matrix& w, int64_t row, int64_t col) {
  const int64_t g = col / 64, j = col % 64;
  const uint8_t byte = w.q[row * (w.k / 2) + g * 32 + (j % 32)];
  const int q = (j < 32 ? (byte & 0x0f) : (byte >> 4)) - 8;
  return static_cast<float>(q) * w.scale[row * (w.k / kQ4Block) + col / kQ4Block];
}

void GemmQ4(const float* x, const Q4Matrix& w, const float* bias, float* y, int64_t m) {
  const int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  if (m > kSmallM) {
    GemmQ8(x, w.expanded, bias, y, m);
    return;
  }
  std::vector<uint8_t> xu;
  std::vector<float> xs;
  QuantizeRowsU8(x, m, k, &xu, &xs);
  if (Cpu().avx512_full()) {
    ThreadPool::Global().ParallelFor((n + kRowBlock - 1) / kRowBlock, [&](int64_t b, int64_t e) {
      GemvQ4Avx512(xu.data(), xs.data(), w, y, m, b * kRowBlock, std::min(n, e * kRowBlock));
    });
  } else {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < m; ++i) {
        double acc = 0;
        for (int64_t j = 0; j < k; ++j)
          acc += (static_cast<int>(xu[i * k + j]) - 128) * static_cast<double>(Q4Value(w, r, j));
        y[i * n + r] = xs[i] * static_cast<float>(acc);
      }
  }
  AddBias(y, bias, m, n);
}

}  // namespace plm
