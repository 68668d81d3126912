#include "core/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/attention_avx2.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/exp_approx.h"
#include "core/flash_avx2.h"
#include "core/flash_fp16.h"
#include "core/flash_q8.h"
#include "core/key_tiles.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "core/thread_pool.h"
#include "plm/error.h"

namespace plm {

namespace {

constexpr int64_t kQBlock = 4;

}  // namespace

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void FusedAttentionGeneric(
    const AttentionArgs& a);

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void ExpInPlace(float* x,
                                                                                       int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = ExpApprox(x[i]);
}

namespace {

// erf(z) = z P(z^2) / Q(z^2), P of degree 5, Q of degree 5 with Q(0) = 1: a rational
// least-squares fit to erf on [0, 4] made for this kernel (Lawson-weighted, in double;
// scripts/fit_gelu_erf.py). Max error 2e-8 in exact arithmetic, <= 4.5e-7 evaluated in f32
// (GELU: <= 2.1e-7 x max(1, |x|) over [-10, 10]);
// no exp, one reciprocal: ~2/3 of the instructions of the Abramowitz & Stegun 7.1.26 form with
// its exp that it replaced. erf(4) = 1 - 1.5e-8 is 1 in f32, but the fit evaluates to 1 -/+ 2
// ulp there; past 4 it rises (1 + 8e-6 at 4.5), so z is clamped to 4.5 and the result to [-1, 1]:
// exactly 1 for large z, so GELU(x) = x there (and inf for inf).
constexpr float kErfP[6] = {1.1283789781906843f,   0.19623487647955137f,   0.05346504678845637f,
                            0.004002839929191268f, 0.0002879895576017674f, 1.974532706531345e-06f};
constexpr float kErfQ[6] = {1.0f,
                            0.507239806688201f,
                            0.11647006298407231f,
                            0.01544289860738254f,
                            0.0012160974481231325f,
                            3.747497647715875e-05f};
constexpr float kErfClamp = 4.5f, kInvSqrt2 = 0.70710678118654752f;

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void GeluFastGeneric(
    float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float z = std::clamp(v * kInvSqrt2, -kErfClamp, kErfClamp), w = z * z;
    float p = kErfP[5], q = kErfQ[5];
    for (int c = 4; c >= 0; --c) {
      p = p * w + kErfP[c];
      q = q * w + kErfQ[c];
    }
    const float hv = 0.5f * v;
    x[i] = hv + hv * std::clamp(z * p / q, -1.0f, 1.0f);
  }
}

}  // namespace

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void SiluFastInPlace(
    float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + ExpApprox(-x[i]));
}

void ParallelGeluFast(float* x, int64_t n) {
  if (n < 65536) {  // decode-sized: not worth waking threads
    GeluFastInPlace(x, n);
    return;
  }
  ParallelForOmp((n + 4095) / 4096, [&](int64_t b, int64_t e) {
    GeluFastInPlace(x + b * 4096, std::min(n, e * 4096) - b * 4096);
  });
}

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void SiluMulFastInPlace(
    float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + ExpApprox(-g[i])) * u[i];
}

void ParallelSiluMulFast(float* g, const float* u, int64_t n) {
  if (n < 65536) {
    SiluMulFastInPlace(g, u, n);
    return;
  }
  ParallelForOmp((n + 4095) / 4096, [&](int64_t b, int64_t e) {
    SiluMulFastInPlace(g + b * 4096, u + b * 4096, std::min(n, e * 4096) - b * 4096);
  });
}

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void TransposeKeys(
    const float* k, int64_t stride, int64_t nk, int64_t hd, float* kt) {
  constexpr int64_t kTile = 16;
  for (int64_t j0 = 0; j0 < nk; j0 += kTile) {
    const int64_t j1 = std::min(nk, j0 + kTile);
    for (int64_t d = 0; d < hd; ++d)
      for (int64_t j = j0; j < j1; ++j) kt[d * nk + j] = k[j * stride + d];
  }
}

namespace {

// exp(x) on 16 lanes: ExpApprox's steps (core/exp_approx.h), the power of two via scalef.
__attribute__((target("avx512f,fma"))) inline __m512 Exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpMin)), _mm512_set1_ps(kExpMax));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kExpLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kExpLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(kExpLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpPoly[i]));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// GeluFastGeneric with AVX-512 written out: 1 / Q as vrcp14ps and one Newton step (vdivps
// would take as long as the rest), within an ulp or two of the division.
__attribute__((target("avx512f,fma"))) void GeluAvx512(float* x, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const __m512 lo = _mm512_set1_ps(-kErfClamp), hi = _mm512_set1_ps(kErfClamp);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk =
        n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
    const __m512 z =
        _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(v, _mm512_set1_ps(kInvSqrt2)), hi), lo);
    const __m512 w = _mm512_mul_ps(z, z);
    __m512 p = _mm512_set1_ps(kErfP[5]), q = _mm512_set1_ps(kErfQ[5]);
    for (int c = 4; c >= 0; --c) {
      p = _mm512_fmadd_ps(p, w, _mm512_set1_ps(kErfP[c]));
      q = _mm512_fmadd_ps(q, w, _mm512_set1_ps(kErfQ[c]));
    }
    __m512 r = _mm512_rcp14_ps(q);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(q, r, one), r);
    const __m512 erf = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(_mm512_mul_ps(z, p), r), one),
                                     _mm512_sub_ps(_mm512_setzero_ps(), one));
    const __m512 hv = _mm512_mul_ps(half, v);
    _mm512_mask_storeu_ps(x + i, mk, _mm512_fmadd_ps(hv, erf, hv));
  }
}

}  // namespace

void GeluFastInPlace(float* x, int64_t n) {
  if (Cpu().avx512f) {
    GeluAvx512(x, n);
  } else {
    GeluFastGeneric(x, n);
  }
}

namespace {

constexpr float kLog2e = kExpLog2e, kLn2 = 0.693147180559945309f;

// 2^x for x <= ~0 to ~4e-5 relative, for probabilities rounded to bf16 right after (3.9e-3):
// n = round(x), degree-4 Taylor of 2^f on f = x - n in [-1/2, 1/2], scalef. Very negative x
// (down to -1e38) gives 0.
__attribute__((target("avx512f,fma"))) inline __m512 Exp2Bf16(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(9.6181291e-3f);                  // ln2^4 / 24
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));  // ln2^3 / 6
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));  // ln2^2 / 2
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));  // ln2
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Exp2Bf16 in one instruction less, for the flash kernel's softmax: f = x - floor(x) in [0, 1)
// by vreduceps (AVX512DQ), the same Taylor polynomial re-expanded about 1/2 (sqrt 2 * sum
// a_i (f - 1/2)^i: max relative error 5.6e-5 either way), and scalef, which takes floor(x).
// Only where the probabilities are rounded to fp16/bf16 right after: its error no longer
// vanishes at x = 0, and the decode kernels' f32 probabilities of nearly uniform rows (every x
// near 0) moved enough to flip q8 roundings downstream (KVCacheBf16 test), so they keep
// Exp2Bf16.
__attribute__((target("avx512f,avx512dq,fma"))) inline __m512 Exp2Reduce(__m512 x) {
  const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_set1_ps(1.3602088e-2f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.1290486e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4239272e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9259650e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000557f));
  return _mm512_scalef_ps(p, x);
}

__attribute__((target("avx512f,avx512bw"))) inline __m512 LoadBf16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// Walks the cache lines of rows [0, rows) (row_bytes each, stride bytes apart) one prefetch into
// L2 per Next(): decode attention reads no memory while it takes the softmax of the scores, so it
// fetches the start of the values meanwhile (rows = 0: does nothing).
struct LinePrefetcher {
  const char* base = nullptr;
  int64_t stride = 0, row_bytes = 0, rows = 0, row = 0, off = 0;
  void Next() {
    if (row >= rows) return;
    _mm_prefetch(base + row * stride + off, _MM_HINT_T1);
    off += 64;
    if (off >= row_bytes) {
      off = 0;
      ++row;
    }
  }
};

// Scores of query `qi` (row `si`, keys 0..nk) → probabilities in place, 16 keys per step: scaled,
// invalid and causally hidden keys masked. Returns how many leading entries hold probabilities
// (the rest are 0 by definition). A row with no visible key attends uniformly to all nk keys, as
// the reference's finfo.min masking gives. `si` must have room up to rl rounded up to 16.
// inv_sum == nullptr: the probabilities are normalised. Otherwise they are left unnormalised and
// *inv_sum = 1 / their sum (the caller scales the row's output once instead of every entry), and
// with Fast the exponentials are Exp2Bf16's (4e-5 relative; the bf16 paths' products carry 3.9e-3).
template <bool Fast>
__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) int64_t SoftmaxScoreRow(
    const AttentionArgs& a, float* si, int64_t qi, float* inv_sum = nullptr,
    LinePrefetcher* pf = nullptr, float* lse = nullptr) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t nk = a.nk;
  const int64_t rl = a.causal_offset >= 0 ? std::min(nk, a.causal_offset + qi + 1) : nk;
  const int64_t chunks = (rl + 15) / 16;
  // Fast: scores in units of log2 e, so that p = 2^(x - max).
  const __m512 scale = _mm512_set1_ps(Fast ? a.scale * kLog2e : a.scale),
               neg_inf = _mm512_set1_ps(kNegInf);
  __m512 vmax = neg_inf;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t left = rl - c * 16;
    __mmask16 m =
        left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
    if (a.valid != nullptr) {
      const __m128i vb = _mm_maskz_loadu_epi8(m, a.valid + c * 16);
      m = _mm_test_epi8_mask(vb, vb);
    }
    const __m512 x = _mm512_mask_mul_ps(neg_inf, m, _mm512_loadu_ps(si + c * 16), scale);
    _mm512_storeu_ps(si + c * 16, x);
    if (pf != nullptr) pf->Next();
    vmax = _mm512_max_ps(vmax, x);
  }
  const float mx = _mm512_reduce_max_ps(vmax);
  if (mx == kNegInf) {
    std::fill_n(si, nk, 1.0f / static_cast<float>(nk));
    if (inv_sum != nullptr) *inv_sum = 1.0f;
    if (lse != nullptr) *lse = kNegInf;
    return nk;
  }
  const __m512 mv = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t c = 0; c < chunks; ++c) {
    const __m512 x = _mm512_loadu_ps(si + c * 16);
    // exp(-inf - mx) must be 0 (Exp512 clamps to ~1e-38; Exp2Bf16 gives NaN): masked keys stay
    // out.
    const __m512 e = Fast ? Exp2Bf16(_mm512_sub_ps(x, mv)) : Exp512(_mm512_sub_ps(x, mv));
    const __m512 p = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, neg_inf, _CMP_NEQ_OQ), e);
    _mm512_storeu_ps(si + c * 16, p);
    vsum = _mm512_add_ps(vsum, p);
    if (pf != nullptr) pf->Next();
  }
  const float sum = _mm512_reduce_add_ps(vsum), inv = 1.0f / sum;
  // Fast: the scores are in units of log2 e, p = 2^(x - mx).
  if (lse != nullptr) *lse = (Fast ? mx * kLn2 : mx) + std::log(sum);
  if (inv_sum != nullptr) {
    *inv_sum = inv;
    return rl;
  }
  const __m512 vinv = _mm512_set1_ps(inv);
  for (int64_t c = 0; c < chunks; ++c)
    _mm512_storeu_ps(si + c * 16, _mm512_mul_ps(_mm512_loadu_ps(si + c * 16), vinv));
  return rl;
}

// Rows of keys/values the decode kernels prefetch ahead of use (8 KB of bf16 at head dim 64).
// With the hardware prefetcher alone, decode attention read a long KV cache from DRAM at ~0.65 of
// the plain read rate (compute and memory took turns); 64 rows ahead gave ~0.8 (attention_bench
// FusedAttentionDecodeFromMemory against ReadBandwidth, slow-bandwidth minutes).
constexpr int64_t kAheadRows = 64;

// L2 prefetch distance (bytes) of the decode kernels' key and value streams; 0: none. Intel (the
// Xeon of session 14, a 1B step's 310 MB of K/V): with the L1 prefetches alone decode attention
// took 1.34-1.68x the time of a plain read of the same bytes, with this one besides 1.16-1.47x
// (noisy minutes; 2-32 KB L1 and 24-128 KB L2 distances were indistinguishable). AMD keeps the
// L1 prefetches it was tuned with (not measured there).
int64_t DecodeL2AheadBytes() {
  return Cpu().intel ? 64 * 1024 : 0;
}

// Prefetches the cache lines 8 KB (L1, as the row kernels' 64 rows of 64 bf16) and `ahead2`
// bytes (L2, when > 0) past each line of [p, p + bytes), short of p + left.
__attribute__((always_inline)) inline void PrefetchAhead(const char* p, int64_t bytes, int64_t left,
                                                         int64_t ahead2) {
  constexpr int64_t kAhead = kAheadRows * 128;
  for (int64_t o = 0; o < bytes; o += 64) {
    if (o + kAhead < left) _mm_prefetch(p + o + kAhead, _MM_HINT_T0);
    if (ahead2 > 0 && o + ahead2 < left) _mm_prefetch(p + o + ahead2, _MM_HINT_T1);
  }
}

// out[i] = p[i] · V for up to 4 probability rows (row stride ld, keys [0, keys)), V rows of
// float32 or bf16 values (widened in registers), 64 dims per pass; hd % 16 == 0.
// out[i] = sum_j p[i, j] v[j] for `rows` rows. R > 0: rows == R and hd % 64 == 0 at compile
// time, so the 4 x R accumulators stay in registers (with both at run time they went to the
// stack); R == 0: any rows <= 4 and head size.
template <int R, typename T>
__attribute__((target("avx512f,avx512bw,fma"), always_inline)) inline void ProbsTimesValuesN(
    const float* p, int64_t ld, int64_t rows_arg, int64_t keys, const T* v, int64_t v_stride,
    int64_t hd, float* out, int64_t out_stride, int64_t pf_keys) {
  const int64_t rows = R > 0 ? R : rows_arg;
  // bf16 values with 64 dims per pass known at compile time: whole-vector loads (see below).
  constexpr bool kPairs = std::is_same_v<T, uint16_t> && R > 0;
  const __m512i odd = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  int64_t ahead2_rows = pf_keys;  // none
  if (std::is_same_v<T, uint16_t> && DecodeL2AheadBytes() > 0)
    ahead2_rows = DecodeL2AheadBytes() / (v_stride * static_cast<int64_t>(sizeof(T)));
  for (int64_t d0 = 0; d0 < hd; d0 += 64) {
    const int64_t nv = R > 0 ? 4 : std::min<int64_t>(64, hd - d0) / 16;
    __m512 o[R > 0 ? R : 4][4];
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < 4; ++c) o[i][c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < keys; ++j) {
      const T* vj = v + j * v_stride + d0;
      if (j + kAheadRows < pf_keys)
        for (int64_t c = 0; c < nv; c += 64 / (16 * static_cast<int64_t>(sizeof(T))))
          _mm_prefetch(reinterpret_cast<const char*>(vj + kAheadRows * v_stride + 16 * c),
                       _MM_HINT_T0);
      if (j + ahead2_rows < pf_keys)  // a bf16 cache read from memory (decode)
        for (int64_t c = 0; c < nv; c += 64 / (16 * static_cast<int64_t>(sizeof(T))))
          _mm_prefetch(reinterpret_cast<const char*>(vj + ahead2_rows * v_stride + 16 * c),
                       _MM_HINT_T1);
      __m512 vv[4];
      if constexpr (kPairs) {
        // 32 bf16 values per load, widened as even and odd dimensions (a shift, a mask): half
        // the loads and widening instructions of LoadBf16 (whose vpmovzxwd shares a port with
        // the FMAs); the sums come out in that order and are interleaved once at the end.
        for (int64_t c = 0; c < 2; ++c) {
          const __m512i x = _mm512_loadu_si512(vj + 32 * c);
          vv[2 * c] = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
          vv[2 * c + 1] = _mm512_castsi512_ps(_mm512_and_si512(x, odd));
        }
      } else {
        for (int64_t c = 0; c < nv; ++c) {
          if constexpr (std::is_same_v<T, uint16_t>) {
            vv[c] = LoadBf16(vj + 16 * c);
          } else {
            vv[c] = _mm512_loadu_ps(vj + 16 * c);
          }
        }
      }
      for (int64_t i = 0; i < rows; ++i) {
        const __m512 pj = _mm512_set1_ps(p[i * ld + j]);
        for (int64_t c = 0; c < nv; ++c) o[i][c] = _mm512_fmadd_ps(pj, vv[c], o[i][c]);
      }
    }
    if constexpr (kPairs) {
      const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
      const __m512i hi =
          _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t c = 0; c < 2; ++c) {
          float* oc = out + i * out_stride + d0 + 32 * c;
          _mm512_storeu_ps(oc, _mm512_permutex2var_ps(o[i][2 * c], lo, o[i][2 * c + 1]));
          _mm512_storeu_ps(oc + 16, _mm512_permutex2var_ps(o[i][2 * c], hi, o[i][2 * c + 1]));
        }
      continue;
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < nv; ++c)
        _mm512_storeu_ps(out + i * out_stride + d0 + 16 * c, o[i][c]);
  }
}

// pf_keys (>= keys): rows of v that exist for prefetching (-1: keys).
template <typename T>
__attribute__((target("avx512f,avx512bw,fma"))) inline void ProbsTimesValues(
    const float* p, int64_t ld, int64_t rows, int64_t keys, const T* v, int64_t v_stride,
    int64_t hd, float* out, int64_t out_stride, int64_t pf_keys = -1) {
  pf_keys = std::max(pf_keys, keys);
  if (hd % 64 == 0) {
    switch (rows) {
      case 1:
        return ProbsTimesValuesN<1>(p, ld, 1, keys, v, v_stride, hd, out, out_stride, pf_keys);
      case 2:
        return ProbsTimesValuesN<2>(p, ld, 2, keys, v, v_stride, hd, out, out_stride, pf_keys);
      case 3:
        return ProbsTimesValuesN<3>(p, ld, 3, keys, v, v_stride, hd, out, out_stride, pf_keys);
      case 4:
        return ProbsTimesValuesN<4>(p, ld, 4, keys, v, v_stride, hd, out, out_stride, pf_keys);
    }
  }
  ProbsTimesValuesN<0>(p, ld, rows, keys, v, v_stride, hd, out, out_stride, pf_keys);
}

// Register-blocked AVX-512 kernel for many queries with transposed keys: scores of 8 queries x
// 32 keys per step (16 accumulators), softmax over the block's rows, then P·V for 4 rows x 64
// dims at a time. Needs hd % 16 == 0 and a.kt.
__attribute__((target("avx512f,fma"))) void FusedAttentionAvx512(const AttentionArgs& a) {
  const int64_t hd = a.hd, nk = a.nk;
  constexpr int64_t kQB = 8;
  thread_local std::vector<float> sbuf;
  const int64_t ld = (nk + 31) / 32 * 32;
  if (sbuf.size() < static_cast<size_t>(kQB * ld)) sbuf.resize(kQB * ld);
  float* s = sbuf.data();
  for (int64_t q0 = 0; q0 < a.nq; q0 += kQB) {
    const int64_t qb = std::min(kQB, a.nq - q0);
    int64_t lim = nk;
    if (a.causal_offset >= 0) lim = std::min(nk, a.causal_offset + q0 + qb);
    const float* qrow[kQB];
    for (int64_t i = 0; i < kQB; ++i) qrow[i] = a.q + (q0 + std::min(i, qb - 1)) * a.q_stride;
    // Scores: s[i][j] for j < lim (rounded up to 32; the extra columns are masked below).
    for (int64_t j0 = 0; j0 < lim; j0 += 32) {
      const int64_t jn = std::min<int64_t>(32, lim - j0);
      const __mmask16 m0 = jn >= 16 ? 0xffff : static_cast<__mmask16>((1u << jn) - 1u);
      const __mmask16 m1 = jn >= 32  ? 0xffff
                           : jn > 16 ? static_cast<__mmask16>((1u << (jn - 16)) - 1u)
                                     : 0;
      __m512 acc[kQB][2];
      for (int64_t i = 0; i < kQB; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const float* kr = a.kt + d * a.kt_stride + j0;
        const __m512 k0 = _mm512_maskz_loadu_ps(m0, kr);
        const __m512 k1 = _mm512_maskz_loadu_ps(m1, kr + 16);
        for (int64_t i = 0; i < kQB; ++i) {
          const __m512 qv = _mm512_set1_ps(qrow[i][d]);
          acc[i][0] = _mm512_fmadd_ps(qv, k0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(qv, k1, acc[i][1]);
        }
      }
      for (int64_t i = 0; i < qb; ++i) {
        _mm512_storeu_ps(s + i * ld + j0, acc[i][0]);
        _mm512_storeu_ps(s + i * ld + j0 + 16, acc[i][1]);
      }
    }
    // Softmax per row (masked entries get probability 0).
    int64_t row_lim[kQB];
    for (int64_t i = 0; i < qb; ++i) row_lim[i] = SoftmaxScoreRow<false>(a, s + i * ld, q0 + i);
    int64_t block_lim = 0;
    for (int64_t i = 0; i < qb; ++i) block_lim = std::max(block_lim, row_lim[i]);
    for (int64_t i = 0; i < qb; ++i)
      for (int64_t j = row_lim[i]; j < block_lim; ++j) s[i * ld + j] = 0.0f;
    // P·V, 4 rows x 64 dims at a time.
    for (int64_t i0 = 0; i0 < qb; i0 += 4)
      ProbsTimesValues(s + i0 * ld, ld, std::min<int64_t>(4, qb - i0), block_lim, a.v, a.kv_stride,
                       hd, a.out + (q0 + i0) * a.out_stride, a.out_stride);
  }
}

inline uint16_t ToBf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

// One P·V step of the flash kernel: rows [IB] x dims [16 * NV] of the running output `o` (row
// stride hd) are scaled by alpha and accumulate the bf16 probabilities `p` (key pairs as int32,
// row stride p_stride) times the packed values `v` (pair stride 2 * hd).
struct PvTile {
  const uint16_t* v;
  int64_t hd, pairs;
  const int32_t* p;
  int64_t p_stride;
  const float* alpha;
  float* o;
};

template <int IB, int NV>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void PvAccumulate(
    const PvTile& t) {
  __m512 o[IB][NV];
  for (int i = 0; i < IB; ++i) {
    const __m512 al = _mm512_set1_ps(t.alpha[i]);
    for (int c = 0; c < NV; ++c)
      o[i][c] = _mm512_mul_ps(al, _mm512_loadu_ps(t.o + i * t.hd + 16 * c));
  }
  for (int64_t jp = 0; jp < t.pairs; ++jp) {
    const uint16_t* vr = t.v + jp * 2 * t.hd;
    __m512bh vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = (__m512bh)_mm512_loadu_si512(vr + 32 * c);
    for (int i = 0; i < IB; ++i) {
      const __m512bh pv = (__m512bh)_mm512_set1_epi32(t.p[i * t.p_stride + jp]);
      for (int c = 0; c < NV; ++c) o[i][c] = _mm512_dpbf16_ps(o[i][c], pv, vv[c]);
    }
  }
  for (int i = 0; i < IB; ++i)
    for (int c = 0; c < NV; ++c) _mm512_storeu_ps(t.o + i * t.hd + 16 * c, o[i][c]);
}

// Edge tiles (fewer than 4 rows, hd not a multiple of 64): one row at a time.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void PvAccumulateAny(
    const PvTile& t, int64_t ib, int64_t nv) {
  for (int64_t i = 0; i < ib; ++i) {
    PvTile r = t;
    r.p += i * t.p_stride;
    r.alpha += i;
    r.o += i * t.hd;
    for (int64_t c = 0; c < nv; ++c) {
      PvTile rc = r;
      rc.v += 32 * c;
      rc.o += 16 * c;
      PvAccumulate<1, 1>(rc);
    }
  }
}

// The same step with f32 probabilities (row stride p_stride) and f32 values (rows of hd), for
// FusedAttentionFlash<FlashKind::kF32>: o = alpha * o + sum_j p[j] v[j] over `keys` keys. (One
// template for both steps, with the edge tiles in a shared function, ran the f32 kernel 25-35 %
// slower on the Xeon of session 13 — kept apart on purpose.)
struct PvTileF32 {
  const float* v;
  int64_t hd, keys;
  const float* p;
  int64_t p_stride;
  const float* alpha;
  float* o;
};

template <int IB, int NV>
__attribute__((target("avx512f,fma"))) inline void PvAccumulateF32(const PvTileF32& t) {
  __m512 o[IB][NV];
  for (int i = 0; i < IB; ++i) {
    const __m512 al = _mm512_set1_ps(t.alpha[i]);
    for (int c = 0; c < NV; ++c)
      o[i][c] = _mm512_mul_ps(al, _mm512_loadu_ps(t.o + i * t.hd + 16 * c));
  }
  for (int64_t j = 0; j < t.keys; ++j) {
    const float* vr = t.v + j * t.hd;
    __m512 vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = _mm512_loadu_ps(vr + 16 * c);
    for (int i = 0; i < IB; ++i) {
      const __m512 pv = _mm512_set1_ps(t.p[i * t.p_stride + j]);
      for (int c = 0; c < NV; ++c) o[i][c] = _mm512_fmadd_ps(pv, vv[c], o[i][c]);
    }
  }
  for (int i = 0; i < IB; ++i)
    for (int c = 0; c < NV; ++c) _mm512_storeu_ps(t.o + i * t.hd + 16 * c, o[i][c]);
}

__attribute__((target("avx512f,fma"))) void PvAccumulateF32Any(const PvTileF32& t, int64_t ib,
                                                               int64_t nv) {
  for (int64_t i = 0; i < ib; ++i)
    for (int64_t c = 0; c < nv; ++c) {
      PvTileF32 r = t;
      r.p += i * t.p_stride;
      r.alpha += i;
      r.o += i * t.hd + 16 * c;
      r.v += 16 * c;
      PvAccumulateF32<1, 1>(r);
    }
}

// The scores of one 32-key tile for 8 rows (row stride ld) that some row may not fully see: keys
// past row i's causal limit (row 0 sees `keys0`, row i keys0 + i) or masked by `valid` (two
// 16-lane masks) become kHidden; the rest update the rows' running maxima.
// kHidden is finite, so kHidden * scale * log2 e - m stays finite and its power of two is 0 (-inf
// would give inf - inf = NaN in the range reduction).
constexpr float kHidden = -1e30f;
__attribute__((target("avx512f,avx512bw,avx512vl"))) void MaskTile(float* s, int64_t ld,
                                                                   int64_t keys0,
                                                                   const __mmask16* valid,
                                                                   __m512* vmax) {
  const __m512 hidden = _mm512_set1_ps(kHidden);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t c = 0; c < 2; ++c) {
      const int64_t left = keys0 + i - c * 16;
      const __mmask16 causal = left >= 16 ? static_cast<__mmask16>(0xffff)
                               : left > 0 ? static_cast<__mmask16>((1u << left) - 1u)
                                          : 0;
      float* p = s + i * ld + c * 16;
      const __m512 x = _mm512_mask_mov_ps(hidden, valid[c] & causal, _mm512_loadu_ps(p));
      _mm512_storeu_ps(p, x);
      vmax[i] = _mm512_max_ps(vmax[i], x);
    }
}

// Flash-style kernel for many queries (prefill, vision): K/V are packed once per call, then for
// each block of 8 query positions the keys are visited in blocks of kKB with an online softmax
// (running max and sum per row, f32), so no score row longer than kKB exists. All `heads` query
// heads of the group use each key block while it is in L1. Needs hd % 32 == 0.
// kF32 = false: bf16 products (vdpbf16ps; K as 32-key tiles [hd/2][32][2], V as key pairs
// [hd][2], queries and probabilities rounded to bf16). kF32 = true: f32 FMAs on keys and values
// widened once at packing (K as 32-key tiles [hd][32], V as rows), f32 queries and probabilities:
// for CPUs whose vdpbf16ps retires half the multiply-adds of FMA (measured on an Intel Xeon:
// 41 vs 84 GMAC/s per core, `attention_bench` BM_DotProductThroughput). kF16: fp16 FMAs
// (core/flash_fp16.h: 32 multiply-adds per instruction, sums of 2 x 32 products in fp16, inputs
// scaled by powers of two to stay in range; K as 32-key tiles [hd][32], V as rows, f32 softmax)
// on CPUs with AVX512-FP16. kF16Q8: kF16 with int8 scores (core/flash_q8.h), where the caller
// allows them (AttentionArgs::int8_scores) and the CPU has VNNI.
enum class FlashKind { kBf16, kF32, kF16, kF16Q8 };

template <FlashKind kKind>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma"))) void
FusedAttentionFlash(const AttentionArgs& a) {
  constexpr bool kF32 = kKind == FlashKind::kF32,
                 kF16 = kKind == FlashKind::kF16 || kKind == FlashKind::kF16Q8,
                 kQ8 = kKind == FlashKind::kF16Q8, kBf16 = kKind == FlashKind::kBf16;
  const int64_t hd = a.hd, nk = a.nk, H = std::max<int64_t>(1, a.heads);
  constexpr int64_t kQB = 8, kKB = 256;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t ldk = (nk + 31) / 32 * 32;
  thread_local std::vector<uint16_t> kp, vp, qb16, pb16;  // bf16 bits (kp, vp: fp16 for kF16)
  thread_local std::vector<float> kpf, vpf, qf, pf;
  thread_local std::vector<float> sbuf, obuf, mbuf, lbuf;
  // kF16Q8: the keys' int8 tiles, scales and offsets; the queries' u8 rows and scales.
  thread_local std::vector<int8_t> kq8;
  thread_local std::vector<uint8_t> qu8;
  thread_local std::vector<float> kscale, qscale;
  thread_local std::vector<int32_t> koff;
  const int64_t ks = a.k_stride > 0 ? a.k_stride : a.kv_stride;
  float scale = a.scale;  // of the raw scores (kF16: x 2^-(ex.q + ex.k))
  fp16::Exponents ex;
  float sq = 1.0f;  // kF16: the queries' power-of-two scale
  if constexpr (kF16) {
    float max_q = 0.0f, max_k = 0.0f, max_v = 0.0f;
    for (int64_t h = 0; h < H; ++h)
      max_q = std::max(max_q, fp16::MaxAbsF32(a.q + h * a.q_head_stride, a.nq, hd, a.q_stride));
    if (a.k16 != nullptr) {
      max_k = fp16::MaxAbsBf16(a.k16, nk / 32 * 32 * hd);
      for (int64_t j = nk / 32 * 32; j < nk; ++j)
        for (int64_t d = 0; d < hd; ++d)
          max_k = std::max(max_k, std::fabs(Bf16ToF32(a.k16[KeyTileIndex(j, d, hd)])));
      max_v = fp16::MaxAbsBf16Rows(a.v16, nk, hd, a.kv_stride);
    } else {
      // kQ8: the keys' scales are their own (PackKeys, below, also finds non-finite keys).
      if (!kQ8) max_k = fp16::MaxAbsF32(a.k, nk, hd, ks);
      max_v = fp16::MaxAbsF32(a.v, nk, hd, a.kv_stride);
    }
    ex = fp16::ChooseExponents(max_q, max_k, max_v);
    if (!ex.ok) {  // inf or NaN somewhere: the f32 kernel propagates them as the reference does
      FusedAttentionFlash<FlashKind::kF32>(a);
      return;
    }
    scale = kQ8 ? a.scale : std::ldexp(a.scale, -(ex.q + ex.k));
    sq = std::ldexp(1.0f, ex.q);
    const float sk = std::ldexp(1.0f, ex.k), sv = std::ldexp(1.0f, ex.v);
    // Keys as 32-key tiles [hd][32] (past the last key: zero), values as rows.
    if (!kQ8 || a.k16 != nullptr) kp.resize(static_cast<size_t>(ldk * hd));
    vp.resize(static_cast<size_t>(nk * hd));
    if (a.k16 != nullptr) {
      // Whole cache tiles [hd/2][32][2] converted at once, then the dimension pairs split.
      std::fill(kp.begin() + (nk / 32) * 32 * hd, kp.end(), uint16_t{0});  // a partial last tile
      thread_local std::vector<uint16_t> row;
      row.resize(static_cast<size_t>(32 * hd));
      for (int64_t t0 = 0; t0 < nk; t0 += 32) {
        fp16::Bf16ToF16Scaled(a.k16 + t0 * hd, 32 * hd, sk, row.data());
        uint16_t* kt = kp.data() + t0 * hd;
        const int64_t keys = std::min<int64_t>(32, nk - t0);
        for (int64_t p = 0; p < hd / 2; ++p)
          for (int64_t j = 0; j < keys; ++j) {
            kt[(2 * p) * 32 + j] = row[p * 64 + 2 * j];
            kt[(2 * p + 1) * 32 + j] = row[p * 64 + 2 * j + 1];
          }
      }
      for (int64_t j = 0; j < nk; ++j)
        fp16::Bf16ToF16Scaled(a.v16 + j * a.kv_stride, hd, sv, vp.data() + j * hd);
    } else {
      if constexpr (kQ8) {  // (FusedAttention takes kF16Q8 only for f32 keys)
        kq8.resize(static_cast<size_t>(q8attn::KeyTileBytes(nk, hd)));
        kscale.resize(static_cast<size_t>(ldk));
        koff.resize(static_cast<size_t>(ldk));
        if (!q8attn::PackKeys(a.k, nk, hd, ks, kq8.data(), kscale.data(), koff.data())) {
          FusedAttentionFlash<FlashKind::kF32>(a);  // a key not finite (as above)
          return;
        }
      } else {
        fp16::PackKeyTiles(a.k, nk, hd, ks, sk, kp.data());
      }
      for (int64_t j = 0; j < nk; ++j)
        fp16::ToF16Scaled(a.v + j * a.kv_stride, hd, sv, vp.data() + j * hd);
    }
  }
  if constexpr (kF32) {
    // Keys past the last one in its tile are zero (probability 0 there, and not NaN).
    kpf.resize(static_cast<size_t>(ldk * hd));
    vpf.resize(static_cast<size_t>(nk * hd));
    std::fill(kpf.begin() + (nk / 32) * 32 * hd, kpf.end(), 0.0f);
    for (int64_t j = 0; j < nk; ++j) {
      float* kt = kpf.data() + (j / 32) * 32 * hd + j % 32;
      float* vt = vpf.data() + j * hd;
      if (a.k16 != nullptr) {
        const uint16_t* vj = a.v16 + j * a.kv_stride;
        for (int64_t d = 0; d < hd; ++d) {
          kt[d * 32] = Bf16ToF32(a.k16[KeyTileIndex(j, d, hd)]);
          vt[d] = Bf16ToF32(vj[d]);
        }
      } else {
        const float* kj = a.k + j * ks;
        const float* vj = a.v + j * a.kv_stride;
        for (int64_t d = 0; d < hd; ++d) kt[d * 32] = kj[d];
        std::copy_n(vj, hd, vt);
      }
    }
  }
  // Only the padding past the last key is zeroed (it is read by the last tile / pair with
  // probability 0, and must not be NaN); the keys overwrite the rest.
  if constexpr (kBf16) {
    kp.resize(static_cast<size_t>(ldk * hd));
    vp.resize(static_cast<size_t>(ldk * hd));
    std::fill(kp.begin() + (nk / 32) * 32 * hd, kp.end(), uint16_t{0});
    std::fill(vp.begin() + (nk / 2) * 2 * hd, vp.end(), uint16_t{0});
  }
  // A bf16 cache's whole key tiles are already this layout (core/key_tiles.h).
  static_assert(kKeyTile == 32);
  const int64_t whole = a.k16 != nullptr && kBf16 ? nk / 32 * 32 : 0;
  if (whole > 0) std::copy_n(a.k16, whole * hd, kp.data());
  for (int64_t j = 0; j < nk && kBf16; ++j) {
    uint16_t* kt = kp.data() + (j / 32) * 32 * hd + (j % 32) * 2;
    uint16_t* vt = vp.data() + (j / 2) * 2 * hd + (j % 2);
    if (a.k16 != nullptr) {  // bf16 cache: the same values ToBf16 would give, no rounding
      const uint16_t* vj = a.v16 + j * a.kv_stride;
      for (int64_t d = 0; d < hd; ++d) {
        if (j >= whole) kt[(d / 2) * 64 + (d % 2)] = a.k16[KeyTileIndex(j, d, hd)];
        vt[d * 2] = vj[d];
      }
      continue;
    }
    const float* kj = a.k + j * ks;
    const float* vj = a.v + j * a.kv_stride;
    for (int64_t d = 0; d < hd; ++d) {
      kt[(d / 2) * 64 + (d % 2)] = ToBf16(kj[d]);
      vt[d * 2] = ToBf16(vj[d]);
    }
  }
  // kSub blocks of 8 query positions visit each key block in turn while it is in cache: at long
  // key counts the packed K/V (4.8 MB per KV head at 9472 keys, f32) no longer fit L2, and each
  // pass over them comes from L3.
  constexpr int64_t kSub = 2;
  if constexpr (kF32) qf.resize(static_cast<size_t>(kSub * H * kQB * hd));
  if constexpr (kF32) pf.resize(static_cast<size_t>(kQB * kKB));
  // kF16: queries and probabilities as fp16 pairs (fp16::ToF16PairsScaled, fp16::ProbsToPairs).
  thread_local std::vector<uint32_t> q16, p16;
  if constexpr (kQ8) {
    qu8.resize(static_cast<size_t>(kSub * H * kQB * hd));
    qscale.resize(static_cast<size_t>(kSub * H * kQB));
  }
  if constexpr (kF16) {
    q16.resize(static_cast<size_t>(kSub * H * kQB * hd));
    p16.resize(static_cast<size_t>(kQB * kKB));
  } else if constexpr (!kF32) {
    qb16.resize(static_cast<size_t>(kSub * H * kQB * hd));
    pb16.resize(static_cast<size_t>(kQB * kKB));
  }
  sbuf.resize(static_cast<size_t>(kQB * kKB));
  obuf.resize(static_cast<size_t>(kSub * H * kQB * hd));
  mbuf.resize(static_cast<size_t>(kSub * H * kQB));
  lbuf.resize(static_cast<size_t>(kSub * H * kQB * 16));  // running sums, 16 lanes per row
  float* s = sbuf.data();
  uint32_t* const pp = p16.data();  // fp16 probability pairs (kF16)
  // Keys query block q0 (of qb rows) may see.
  auto block_lim = [&](int64_t q0, int64_t qb) {
    return a.causal_offset >= 0 ? std::min(nk, a.causal_offset + q0 + qb) : nk;
  };
  for (int64_t qs = 0; qs < a.nq; qs += kSub * kQB) {
    const int64_t nsub = std::min(kSub, (a.nq - qs + kQB - 1) / kQB);
    for (int64_t sub = 0; sub < nsub; ++sub) {
      const int64_t q0 = qs + sub * kQB, qb = std::min(kQB, a.nq - q0);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < kQB; ++i) {
          const float* qi = a.q + h * a.q_head_stride + (q0 + std::min(i, qb - 1)) * a.q_stride;
          const int64_t row = (sub * H + h) * kQB + i;
          if constexpr (kF32) {
            std::copy_n(qi, hd, qf.data() + row * hd);
          } else if constexpr (kQ8) {
            q8attn::QuantizeQueries(qi, 1, hd, hd, qu8.data() + row * hd, qscale.data() + row);
          } else if constexpr (kF16) {
            fp16::ToF16PairsScaled(qi, hd, sq, q16.data() + row * hd);
          } else {
            for (int64_t d = 0; d < hd; ++d) qb16[row * hd + d] = ToBf16(qi[d]);
          }
        }
    }
    std::fill(obuf.begin(), obuf.end(), 0.0f);
    std::fill(mbuf.begin(), mbuf.end(), kNegInf);
    std::fill(lbuf.begin(), lbuf.end(), 0.0f);
    const int64_t last_q0 = qs + (nsub - 1) * kQB;
    const int64_t lim_all = block_lim(last_q0, std::min(kQB, a.nq - last_q0));
    for (int64_t kb0 = 0; kb0 < lim_all; kb0 += kKB)
      for (int64_t sub = 0; sub < nsub; ++sub) {
        const int64_t q0 = qs + sub * kQB, qb = std::min(kQB, a.nq - q0);
        const int64_t lim = block_lim(q0, qb);
        if (kb0 >= lim) continue;
        float* const qf_sub = kF32 ? qf.data() + sub * H * kQB * hd : nullptr;
        uint16_t* const qb16_sub = kBf16 ? qb16.data() + sub * H * kQB * hd : nullptr;
        float* const o_sub = obuf.data() + sub * H * kQB * hd;
        float* const m_sub = mbuf.data() + sub * H * kQB;
        float* const l_sub = lbuf.data() + sub * H * kQB * 16;
        const int64_t kn = std::min(kKB, lim - kb0), tiles = (kn + 31) / 32,
                      chunks = (kn + 15) / 16;
        // Keys of the block the rows may see (causal limit and padding), as lane masks per chunk.
        __mmask16 valid_mask[kKB / 16];
        valid_mask[chunks - 1 + (chunks & 1)] = 0;  // a tile's second half past the last key
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t left = kn - c * 16;
          const auto in_range = left >= 16 ? static_cast<__mmask16>(0xffff)
                                           : static_cast<__mmask16>((1u << left) - 1u);
          valid_mask[c] = in_range;
          if (a.valid != nullptr) {
            const __m128i vb = _mm_maskz_loadu_epi8(in_range, a.valid + kb0 + c * 16);
            valid_mask[c] = _mm_test_epi8_mask(vb, vb);
          }
        }
        // Keys of this block row i may see (causal limit; all kn otherwise).
        auto row_keys = [&](int64_t i) {
          return a.causal_offset >= 0 ? std::min(kn, a.causal_offset + q0 + i + 1 - kb0) : kn;
        };
        const int64_t first_row_keys = row_keys(0);
        for (int64_t h = 0; h < H; ++h) {
          // Scores of 8 rows x 32 keys per step, raw (unscaled). Keys a row may not see are set to
          // kHidden; each row's maximum is kept in registers, so the softmax below reads the
          // scores once.
          __m512 vmax[kQB];
          for (int64_t i = 0; i < kQB; ++i) vmax[i] = _mm512_set1_ps(kHidden);
          // Every row sees all 32 keys of tile t (the common case) unless it is the block's last
          // partial one, has padding keys, or reaches past the first row's causal limit.
          auto full_tile = [&](int64_t t) {
            return t * 32 + 32 <= first_row_keys && valid_mask[2 * t] == 0xffff &&
                   valid_mask[2 * t + 1] == 0xffff;
          };
          for (int64_t t = 0; t < tiles; ++t) {
            const bool full = full_tile(t);
            if constexpr (kQ8) {
              const int64_t j0 = kb0 + t * 32, row0 = (sub * H + h) * kQB;
              q8attn::ScoresTile(kq8.data() + j0 * hd, qu8.data() + row0 * hd, hd,
                                 qscale.data() + row0, kscale.data() + j0, koff.data() + j0,
                                 s + t * 32, kKB, full, vmax);
              if (!full) MaskTile(s + t * 32, kKB, row_keys(0) - t * 32, valid_mask + 2 * t, vmax);
              continue;
            }
            if constexpr (kF16) {  // two tiles per call where there are two
              const uint16_t* tile = kp.data() + (kb0 + t * 32) * hd;
              const uint32_t* qh = q16.data() + (sub * H + h) * kQB * hd;
              if (t + 1 < tiles) {
                const bool fulls[2] = {full, full_tile(t + 1)};
                fp16::ScoresTilePair(tile, qh, hd, s + t * 32, kKB, fulls, vmax);
                for (int64_t u = t; u < t + 2; ++u)
                  if (!fulls[u - t])
                    MaskTile(s + u * 32, kKB, row_keys(0) - u * 32, valid_mask + 2 * u, vmax);
                ++t;
                continue;
              }
              fp16::ScoresTile(tile, qh, hd, s + t * 32, kKB, full, vmax);
              if (!full) MaskTile(s + t * 32, kKB, row_keys(0) - t * 32, valid_mask + 2 * t, vmax);
              continue;
            }
            __m512 acc[kQB][2];
            for (int64_t i = 0; i < kQB; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
            if constexpr (kF32) {
              const float* tile = kpf.data() + (kb0 + t * 32) * hd;
              const float* qh = qf_sub + h * kQB * hd;
              for (int64_t d = 0; d < hd; ++d) {
                const __m512 k0 = _mm512_loadu_ps(tile + d * 32);
                const __m512 k1 = _mm512_loadu_ps(tile + d * 32 + 16);
                for (int64_t i = 0; i < kQB; ++i) {
                  const __m512 qv = _mm512_set1_ps(qh[i * hd + d]);
                  acc[i][0] = _mm512_fmadd_ps(qv, k0, acc[i][0]);
                  acc[i][1] = _mm512_fmadd_ps(qv, k1, acc[i][1]);
                }
              }
            } else {
              const uint16_t* tile = kp.data() + (kb0 + t * 32) * hd;
              const auto* q32 = reinterpret_cast<const int32_t*>(qb16_sub + h * kQB * hd);
              for (int64_t p = 0; p < hd / 2; ++p) {
                const __m512bh k0 = (__m512bh)_mm512_loadu_si512(tile + p * 64);
                const __m512bh k1 = (__m512bh)_mm512_loadu_si512(tile + p * 64 + 32);
                for (int64_t i = 0; i < kQB; ++i) {
                  const __m512bh qv = (__m512bh)_mm512_set1_epi32(q32[i * hd / 2 + p]);
                  acc[i][0] = _mm512_dpbf16_ps(acc[i][0], qv, k0);
                  acc[i][1] = _mm512_dpbf16_ps(acc[i][1], qv, k1);
                }
              }
            }
            for (int64_t i = 0; i < kQB; ++i) {
              if (full) vmax[i] = _mm512_max_ps(vmax[i], _mm512_max_ps(acc[i][0], acc[i][1]));
              _mm512_storeu_ps(s + i * kKB + t * 32, acc[i][0]);
              _mm512_storeu_ps(s + i * kKB + t * 32 + 16, acc[i][1]);
            }
            if (!full) MaskTile(s + t * 32, kKB, row_keys(0) - t * 32, valid_mask + 2 * t, vmax);
          }
          // Online softmax: rescale factor of each row's running output, bf16 probabilities
          // p = exp(scale * x - m) = 2^(x * scale * log2 e - m * log2 e), one FMA per score before
          // the power of two (hidden keys give 2^(-huge) = 0). The rows' new maxima first, then
          // their 8 rescale factors in one vector, and each row's running sum kept as 16 lanes
          // (summed across lanes once, at the end): no scalar exp or lane sum per row and block.
          alignas(32) float alpha[kQB], mnew[kQB];
          float* m = m_sub + h * kQB;
          float* l = l_sub + h * kQB * 16;
          const __m512 c2 = _mm512_set1_ps(scale * kLog2e);
          if (kF16 && qb < kQB) std::fill(pp + qb * kKB, pp + kQB * kKB, 0u);
          __mmask16 seen = 0;  // rows with a visible key in this block
          for (int64_t i = 0; i < kQB; ++i) {
            const float bm = i < qb ? _mm512_reduce_max_ps(vmax[i]) : kHidden;
            if (bm > kHidden) seen |= static_cast<__mmask16>(1u << i);
            mnew[i] = bm > kHidden ? std::max(m[i], bm * scale) : m[i];
          }
          {
            // alpha = exp(m - mnew): 0 where m was -inf (the row's first visible block), 1 where
            // the block shows the row nothing (output unchanged), 0 for rows past qb (P·V of 8
            // rows adds nothing to them).
            const __m512 mo = _mm512_maskz_loadu_ps(0xff, m),
                         mn = _mm512_maskz_loadu_ps(0xff, mnew);
            const __mmask16 first = _mm512_cmp_ps_mask(mo, _mm512_set1_ps(kNegInf), _CMP_EQ_OQ);
            __m512 av = _mm512_maskz_mov_ps(static_cast<__mmask16>(seen & ~first),
                                            Exp512(_mm512_sub_ps(mo, mn)));
            const __mmask16 rows = static_cast<__mmask16>((1u << qb) - 1u);
            av = _mm512_mask_mov_ps(av, static_cast<__mmask16>(rows & ~seen), _mm512_set1_ps(1.0f));
            _mm512_mask_storeu_ps(alpha, 0xff, av);
          }
          for (int64_t i = 0; i < qb; ++i) {
            float* si = s + i * kKB;
            if ((seen >> i & 1u) == 0) {  // nothing visible in this block: p = 0
              if constexpr (kF16) {
                std::fill_n(pp + i * kKB, chunks * 16, 0u);
              } else if constexpr (kF32) {
                std::fill_n(pf.data() + i * kKB, chunks * 16, 0.0f);
              } else {
                std::fill_n(pb16.data() + i * kKB, chunks * 16, uint16_t{0});
              }
              continue;
            }
            const __m512 mv = _mm512_set1_ps(-mnew[i] * kLog2e);
            __m512 vsum = _mm512_setzero_ps();
            for (int64_t c = 0; c < chunks; ++c) {
              const __m512 e = Exp2Reduce(_mm512_fmadd_ps(_mm512_loadu_ps(si + c * 16), c2, mv));
              vsum = _mm512_add_ps(vsum, e);
              if constexpr (kF16) {
                fp16::ProbsToPairs(e, pp + i * kKB + c * 16);
              } else if constexpr (kF32) {
                _mm512_storeu_ps(pf.data() + i * kKB + c * 16, e);
              } else {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(pb16.data() + i * kKB) + c,
                                    (__m256i)_mm512_cvtneps_pbh(e));
              }
            }
            float* li = l + i * 16;
            _mm512_storeu_ps(li,
                             _mm512_fmadd_ps(_mm512_loadu_ps(li), _mm512_set1_ps(alpha[i]), vsum));
            m[i] = mnew[i];
          }
          // O = alpha * O + P·V: fp16 8 rows x 64 dims, f32 8 rows x 32 dims, bf16 (and the last
          // rows of a short block) 4 rows x 64 dims with key pairs per vdpbf16ps.
          const int64_t pairs = (kn + 1) / 2;
          float* ob = o_sub + h * kQB * hd;
          if constexpr (kF16) {
            fp16::PvAccumulate(vp.data() + kb0 * hd, hd, kn, pp, kKB, alpha, ob);
            continue;
          }
          if (kF32 && qb == kQB) {
            // All 8 rows x 32 dims per step: each value comes from L2 once per 8 rows, not twice.
            for (int64_t d0 = 0; d0 < hd; d0 += 32)
              PvAccumulateF32<kQB, 2>(
                  {vpf.data() + kb0 * hd + d0, hd, kn, pf.data(), kKB, alpha, ob + d0});
            continue;
          }
          for (int64_t i0 = 0; i0 < qb; i0 += 4) {
            const int64_t ib = std::min<int64_t>(4, qb - i0);
            for (int64_t d0 = 0; d0 < hd; d0 += 64) {
              const int64_t nv = std::min<int64_t>(64, hd - d0) / 16;
              if constexpr (kF32) {
                const PvTileF32 t{vpf.data() + kb0 * hd + d0, hd,  kn,
                                  pf.data() + i0 * kKB,       kKB, alpha + i0,
                                  ob + i0 * hd + d0};
                if (ib == 4 && nv == 4) {
                  PvAccumulateF32<4, 4>(t);
                } else {
                  PvAccumulateF32Any(t, ib, nv);
                }
                continue;
              }
              const auto* p32 = reinterpret_cast<const int32_t*>(pb16.data());
              const PvTile t{vp.data() + kb0 * hd + d0 * 2,
                             hd,
                             pairs,
                             p32 + i0 * kKB / 2,
                             kKB / 2,
                             alpha + i0,
                             ob + i0 * hd + d0};
              if (ib == 4 && nv == 4) {
                PvAccumulate<4, 4>(t);
              } else {
                PvAccumulateAny(t, ib, nv);
              }
            }
          }
        }
      }
    for (int64_t sub = 0; sub < nsub; ++sub)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < std::min(kQB, a.nq - qs - sub * kQB); ++i) {
          const int64_t q0 = qs + sub * kQB, row = (sub * H + h) * kQB + i;
          float* out = a.out + h * a.out_head_stride + (q0 + i) * a.out_stride;
          const float* o = obuf.data() + row * hd;
          if (mbuf[row] == kNegInf) {
            // No visible key: uniform over all nk keys (the reference's finfo.min masking).
            for (int64_t d = 0; d < hd; ++d) {
              float acc = 0.0f;
              for (int64_t j = 0; j < nk; ++j) {
                if constexpr (kF16) {  // the unscaled values as given
                  acc += a.v16 != nullptr ? Bf16ToF32(a.v16[j * a.kv_stride + d])
                                          : a.v[j * a.kv_stride + d];
                } else {
                  acc += kF32 ? vpf[j * hd + d] : Bf16ToF32(vp[(j / 2) * 2 * hd + d * 2 + j % 2]);
                }
              }
              out[d] = acc / static_cast<float>(nk);
            }
            continue;
          }
          const float lsum = _mm512_reduce_add_ps(_mm512_loadu_ps(lbuf.data() + row * 16));
          const float inv = kF16 ? std::ldexp(1.0f / lsum, -ex.v) : 1.0f / lsum;
          for (int64_t d = 0; d < hd; ++d) out[d] = o[d] * inv;
        }
  }
}

// Scores s[i * ld + j] (unscaled) of up to 4 query rows (rows past qb repeat the last) against
// keys [0, lim) in the cache's tiles (core/key_tiles.h), 32 keys per step: per dimension pair,
// two loads give 16 keys each, so the scores come out 16 keys per vector with no sums across
// lanes. Keys past lim in the last tile give scores that are never read. hd even, <= 256.
// kBf16: vdpbf16ps with each row's query pairs broadcast (queries rounded to bf16). Otherwise
// f32 FMAs: the keys widened in registers (a shift for the even dimension, a mask for the odd
// one), each query value broadcast — twice the multiply-adds per cycle of vdpbf16ps on CPUs
// where that instruction is slow (Intel), and exact products.
template <bool kBf16>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma"))) void ScoresKeyTiles(
    const AttentionArgs& a, int64_t q0, int64_t qb, int64_t lim, float* s, int64_t ld) {
  constexpr int64_t kQB = 4;
  const int64_t hd = a.hd, np = hd / 2;
  alignas(64) float qf[kQB][256];
  alignas(64) int32_t qp[kQB][128];
  for (int64_t i = 0; i < kQB; ++i) {
    const float* row = a.q + (q0 + std::min(i, qb - 1)) * a.q_stride;
    for (int64_t c = 0; c < np; ++c) {
      if constexpr (kBf16) {
        qp[i][c] = static_cast<int32_t>(static_cast<uint32_t>(ToBf16(row[2 * c])) |
                                        (static_cast<uint32_t>(ToBf16(row[2 * c + 1])) << 16));
      } else {
        qf[i][2 * c] = row[2 * c];
        qf[i][2 * c + 1] = row[2 * c + 1];
      }
    }
  }
  const int64_t tile_elems = kKeyTile * hd;
  const int64_t all_bytes = KeyTilePositions(std::max(lim, a.nk_prefetch)) * hd * 2,
                ahead2 = DecodeL2AheadBytes();
  const __m512i odd = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  for (int64_t j0 = 0; j0 < lim; j0 += kKeyTile) {
    const uint16_t* tile = a.k16 + (j0 / kKeyTile) * tile_elems;
    // [i][0]: keys 0-15 of the tile, [i][1]: keys 16-31; x / y: two independent sums each.
    __m512 x[kQB][2], y[kQB][2];
    for (int64_t i = 0; i < kQB; ++i) x[i][0] = x[i][1] = y[i][0] = y[i][1] = _mm512_setzero_ps();
    for (int64_t c = 0; c < np; ++c) {
      // The two lines read below, some way ahead (spread over the tile, not in one burst).
      PrefetchAhead(reinterpret_cast<const char*>(tile + c * 2 * kKeyTile), 128,
                    all_bytes - (j0 * hd + c * 2 * kKeyTile) * 2, ahead2);
      const __m512i k0 = _mm512_loadu_si512(tile + c * 2 * kKeyTile);
      const __m512i k1 = _mm512_loadu_si512(tile + c * 2 * kKeyTile + kKeyTile);
      if constexpr (kBf16) {
        auto& acc = c % 2 == 0 ? x : y;
        for (int64_t i = 0; i < kQB; ++i) {
          const __m512bh qv = (__m512bh)_mm512_set1_epi32(qp[i][c]);
          acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)k0, qv);
          acc[i][1] = _mm512_dpbf16_ps(acc[i][1], (__m512bh)k1, qv);
        }
      } else {
        const __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(k0, 16)),
                     o0 = _mm512_castsi512_ps(_mm512_and_si512(k0, odd)),
                     e1 = _mm512_castsi512_ps(_mm512_slli_epi32(k1, 16)),
                     o1 = _mm512_castsi512_ps(_mm512_and_si512(k1, odd));
        for (int64_t i = 0; i < kQB; ++i) {
          const __m512 qe = _mm512_set1_ps(qf[i][2 * c]), qo = _mm512_set1_ps(qf[i][2 * c + 1]);
          x[i][0] = _mm512_fmadd_ps(qe, e0, x[i][0]);
          x[i][1] = _mm512_fmadd_ps(qe, e1, x[i][1]);
          y[i][0] = _mm512_fmadd_ps(qo, o0, y[i][0]);
          y[i][1] = _mm512_fmadd_ps(qo, o1, y[i][1]);
        }
      }
    }
    // s has room up to lim rounded up to 32 (ld).
    for (int64_t i = 0; i < qb; ++i) {
      _mm512_storeu_ps(s + i * ld + j0, _mm512_add_ps(x[i][0], y[i][0]));
      _mm512_storeu_ps(s + i * ld + j0 + 16, _mm512_add_ps(x[i][1], y[i][1]));
    }
  }
}

// One step of PvPairs: keys a and b (b null: a zero row) interleaved per dimension with
// unpacklo/hi, so each vdpbf16ps adds both keys' products into 16 output lanes.
template <int R, int NZ>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) inline void
PvPairStep(__m512 (&acc)[R][4], const int32_t* p, int64_t p_stride, const uint16_t* va,
           const uint16_t* vb) {
  __m512bh x[2 * NZ];
  for (int z = 0; z < NZ; ++z) {
    const __m512i a = _mm512_loadu_si512(va + 32 * z);
    const __m512i b = vb != nullptr ? _mm512_loadu_si512(vb + 32 * z) : _mm512_setzero_si512();
    x[2 * z] = (__m512bh)_mm512_unpacklo_epi16(a, b);
    x[2 * z + 1] = (__m512bh)_mm512_unpackhi_epi16(a, b);
  }
  for (int i = 0; i < R; ++i) {
    const __m512bh pv = (__m512bh)_mm512_set1_epi32(p[i * p_stride]);
    for (int c = 0; c < 2 * NZ; ++c) acc[i][c] = _mm512_dpbf16_ps(acc[i][c], pv, x[c]);
  }
}

// o[i] = sum_j p[i, j] v[j] for R rows with bf16 probabilities `p` (key pairs as int32, row
// stride p_stride) on bf16 values read in place, keys [0, n): half the instructions of widening
// the values to f32. o (row stride hd) comes out in "pair order": within each 32 dims, 128-bit
// block b of the first vector holds dims 8b..8b+3 and of the second 8b+4..8b+7
// (UnpermutePairOrder restores it). hd % 32 == 0.
template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void PvPairs(
    const int32_t* p, int64_t p_stride, int64_t n, const uint16_t* v, int64_t v_stride, int64_t hd,
    float* o) {
  const int64_t pairs = n / 2;
  for (int64_t d0 = 0; d0 < hd; d0 += 64) {
    const bool two = hd - d0 >= 64;  // 64 dims (two vectors of bf16 per key) or 32
    __m512 acc[R][4];
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_setzero_ps();
    for (int64_t jp = 0; jp < pairs; ++jp) {
      const uint16_t* va = v + 2 * jp * v_stride + d0;
      if (2 * jp + kAheadRows + 1 < n) {
        const char* f = reinterpret_cast<const char*>(va + kAheadRows * v_stride);
        _mm_prefetch(f, _MM_HINT_T0);
        _mm_prefetch(f + 2 * v_stride, _MM_HINT_T0);
        if (two) {
          _mm_prefetch(f + 64, _MM_HINT_T0);
          _mm_prefetch(f + 2 * v_stride + 64, _MM_HINT_T0);
        }
      }
      if (two) {
        PvPairStep<R, 2>(acc, p + jp, p_stride, va, va + v_stride);
      } else {
        PvPairStep<R, 1>(acc, p + jp, p_stride, va, va + v_stride);
      }
    }
    if (n % 2 != 0) {  // the last key alone
      const uint16_t* va = v + (n - 1) * v_stride + d0;
      if (two) {
        PvPairStep<R, 2>(acc, p + pairs, p_stride, va, nullptr);
      } else {
        PvPairStep<R, 1>(acc, p + pairs, p_stride, va, nullptr);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < (two ? 4 : 2); ++c) _mm512_storeu_ps(o + i * hd + d0 + 16 * c, acc[i][c]);
  }
}

// out[d] = o[d] * scale for one row in PvPairs' pair order.
__attribute__((target("avx512f"))) void UnpermutePairOrder(const float* o, int64_t hd, float scale,
                                                           float* out) {
  // Dims 4t..4t+3 of a 32-dim group are block t / 2 of the first vector (t even) or the second.
  alignas(64) static constexpr int32_t kLo[16] = {0, 1, 2, 3, 16, 17, 18, 19,
                                                  4, 5, 6, 7, 20, 21, 22, 23};
  alignas(64) static constexpr int32_t kHi[16] = {8,  9,  10, 11, 24, 25, 26, 27,
                                                  12, 13, 14, 15, 28, 29, 30, 31};
  const __m512i i0 = _mm512_load_si512(kLo), i1 = _mm512_load_si512(kHi);
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t d = 0; d < hd; d += 32) {
    const __m512 a = _mm512_loadu_ps(o + d), b = _mm512_loadu_ps(o + d + 16);
    _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_permutex2var_ps(a, i0, b), sc));
    _mm512_storeu_ps(out + d + 16, _mm512_mul_ps(_mm512_permutex2var_ps(a, i1, b), sc));
  }
}

// Few queries (decode) against the bf16 cache read in place (keys in tiles, values in rows):
// scores (ScoresKeyTiles), softmax in f32 (vectorised), then P·V; 4 query rows share each key and
// value load. With bf16 products allowed (a.bf16) on CPUs with a fast vdpbf16ps, the scores use
// it and P·V takes bf16 probabilities on value pairs (PvPairs); elsewhere (Intel, or a.bf16
// unset) f32 FMAs on keys and values widened in registers. hd % 16 == 0, hd <= 256.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma"))) void
FusedAttentionKV16(const AttentionArgs& a) {
  const int64_t hd = a.hd, nk = a.nk;
  constexpr int64_t kQB = 4;
  const bool bf16_scores = a.bf16 && !Cpu().intel;
  const bool pair_pv = bf16_scores && hd % 32 == 0;
  const int64_t ld = (nk + 31) / 32 * 32;  // whole 32-key tiles
  thread_local std::vector<float> sbuf, obuf;
  thread_local std::vector<int32_t> pb;
  if (sbuf.size() < static_cast<size_t>(kQB * ld)) sbuf.resize(kQB * ld);
  if (pair_pv) {
    if (pb.size() < static_cast<size_t>(kQB * ld / 2)) pb.resize(kQB * ld / 2);
    if (obuf.size() < static_cast<size_t>(kQB * hd)) obuf.resize(kQB * hd);
  }
  float* s = sbuf.data();
  for (int64_t q0 = 0; q0 < a.nq; q0 += kQB) {
    const int64_t qb = std::min(kQB, a.nq - q0);
    int64_t lim = nk;
    if (a.causal_offset >= 0) lim = std::min(nk, a.causal_offset + q0 + qb);
    if (bf16_scores) {
      ScoresKeyTiles<true>(a, q0, qb, lim, s, ld);
    } else {
      ScoresKeyTiles<false>(a, q0, qb, lim, s, ld);
    }
    int64_t row_lim[kQB], block_lim = 0;
    float inv[kQB];
    LinePrefetcher pf;  // the values' first rows, while the softmax runs
    pf.base = reinterpret_cast<const char*>(a.v16);
    pf.stride = a.kv_stride * static_cast<int64_t>(sizeof(uint16_t));
    pf.row_bytes = hd * static_cast<int64_t>(sizeof(uint16_t));
    pf.rows = lim;
    for (int64_t i = 0; i < qb; ++i) {
      // The cheaper exp where reduced precision is allowed (its 4e-5 are far below bf16's).
      float* lse = a.lse != nullptr ? a.lse + q0 + i : nullptr;
      row_lim[i] = a.bf16 ? SoftmaxScoreRow<true>(a, s + i * ld, q0 + i, inv + i, &pf, lse)
                          : SoftmaxScoreRow<false>(a, s + i * ld, q0 + i, inv + i, &pf, lse);
      block_lim = std::max(block_lim, row_lim[i]);
    }
    for (int64_t i = 0; i < qb; ++i)
      for (int64_t j = row_lim[i]; j < block_lim; ++j) s[i * ld + j] = 0.0f;
    float* out = a.out + q0 * a.out_stride;
    if (pair_pv) {
      // Probabilities to bf16 key pairs (entries past block_lim are finite and meet zero rows).
      const int64_t pairs = (block_lim + 1) / 2;
      for (int64_t i = 0; i < qb; ++i)
        for (int64_t j = 0; j < 2 * pairs; j += 32)
          _mm512_storeu_si512(pb.data() + i * (ld / 2) + j / 2,
                              (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + i * ld + j + 16),
                                                           _mm512_loadu_ps(s + i * ld + j)));
      float* ob = obuf.data();
      switch (qb) {
        case 1:
          PvPairs<1>(pb.data(), ld / 2, block_lim, a.v16, a.kv_stride, hd, ob);
          break;
        case 2:
          PvPairs<2>(pb.data(), ld / 2, block_lim, a.v16, a.kv_stride, hd, ob);
          break;
        case 3:
          PvPairs<3>(pb.data(), ld / 2, block_lim, a.v16, a.kv_stride, hd, ob);
          break;
        default:
          PvPairs<4>(pb.data(), ld / 2, block_lim, a.v16, a.kv_stride, hd, ob);
          break;
      }
      for (int64_t i = 0; i < qb; ++i)
        UnpermutePairOrder(ob + i * hd, hd, inv[i], out + i * a.out_stride);
      continue;
    }
    ProbsTimesValues(s, ld, qb, block_lim, a.v16, a.kv_stride, hd, out, a.out_stride,
                     a.nk_prefetch);
    for (int64_t i = 0; i < qb; ++i) {  // normalise the rows once
      const __m512 v = _mm512_set1_ps(inv[i]);
      for (int64_t d = 0; d < hd; d += 16)
        _mm512_storeu_ps(out + i * a.out_stride + d,
                         _mm512_mul_ps(_mm512_loadu_ps(out + i * a.out_stride + d), v));
    }
  }
}

}  // namespace

bool UsesBf16ManyQueryKernel(const AttentionArgs& a) {
  return (a.bf16 && a.nq >= 16 && a.hd % 32 == 0 && Cpu().avx512_full()) ||
         UsesAvx2ManyQueryKernel(a);
}

namespace {
// The flash kernel for this CPU (when UsesBf16ManyQueryKernel): fp16 FMAs where they exist (twice
// the multiply-adds per instruction of f32), f32 FMAs on other Intel CPUs (vdpbf16ps at half the
// FMA rate there, see FusedAttentionFlash), bf16 products elsewhere.
FlashKind ChosenFlashKind() {
  return Cpu().avx512fp16 ? FlashKind::kF16 : Cpu().intel ? FlashKind::kF32 : FlashKind::kBf16;
}
}  // namespace

const char* ManyQueryKernelName(bool reduced_precision) {
  if (reduced_precision && Cpu().avx2_kernels()) return "avx2-f32";
  if (!reduced_precision || !Cpu().avx512_full()) return "reference";
  switch (ChosenFlashKind()) {
    case FlashKind::kF16:
    case FlashKind::kF16Q8:
      return "fp16";
    case FlashKind::kF32:
      return "f32";
    case FlashKind::kBf16:
      break;
  }
  return "bf16";
}

const char* ManyQueryKernelName(bool reduced_precision, bool int8_scores) {
  const char* name = ManyQueryKernelName(reduced_precision);
  if (int8_scores && std::strcmp(name, "fp16") == 0 && Cpu().avx512vnni) return "fp16+int8-scores";
  return name;
}

bool FillsLse(const AttentionArgs& a) {
  return a.k16 != nullptr && a.heads == 1 && !UsesBf16ManyQueryKernel(a) && a.hd % 16 == 0 &&
         a.hd <= 256 && (Cpu().avx512_full() || Cpu().avx2_kernels());
}

int64_t DecodeSplitPoint(int64_t nk, int64_t parts, int64_t p) {
  if (p >= parts) return nk;
  return nk * p / parts / kKeyTile * kKeyTile;
}

AttentionArgs DecodePart(const AttentionArgs& a, int64_t parts, int64_t p, float* out, float* lse) {
  if (!FillsLse(a) || a.causal_offset >= 0 || parts < 1 || p < 0 || p >= parts ||
      a.nk < kKeyTile * parts)
    throw Error(ErrorCode::kInvalidArgument,
                "DecodePart: part " + std::to_string(p) + " of " + std::to_string(parts) +
                    " of a call over " + std::to_string(a.nk) +
                    " keys (needs the bf16-cache decode kernel, no causal offset, 32 keys per "
                    "part)");
  const int64_t k0 = DecodeSplitPoint(a.nk, parts, p), k1 = DecodeSplitPoint(a.nk, parts, p + 1);
  AttentionArgs part = a;
  part.k16 = a.k16 + k0 * a.hd;  // k0 is a whole number of key tiles
  part.v16 = a.v16 + k0 * a.kv_stride;
  if (a.valid != nullptr) part.valid = a.valid + k0;
  part.nk = k1 - k0;
  // The head's later keys and values follow this part's in memory, and the same thread usually
  // takes the next part right after: its streams run on instead of starting cold.
  part.nk_prefetch = std::max(a.nk_prefetch, a.nk) - k0;
  part.out = out;
  part.out_stride = a.hd;
  part.lse = lse;
  return part;
}

void MergeAttentionParts(int64_t parts, const float* const* part_out, const float* const* part_lse,
                         const int64_t* part_keys, int64_t rows, int64_t hd, float* out,
                         int64_t out_stride) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  constexpr int64_t kMaxParts = 16;
  if (parts < 1 || parts > kMaxParts)
    throw Error(ErrorCode::kInvalidArgument,
                "MergeAttentionParts takes 1 to 16 parts, not " + std::to_string(parts));
  float w[kMaxParts];
  for (int64_t r = 0; r < rows; ++r) {
    float mx = kNegInf;
    for (int64_t p = 0; p < parts; ++p) mx = std::max(mx, part_lse[p][r]);
    float total = 0.0f;
    for (int64_t p = 0; p < parts; ++p) {
      // No visible key anywhere: each part attended uniformly to its own keys, so weighting
      // them by their key counts gives the uniform attention over all of them.
      w[p] = mx == kNegInf ? static_cast<float>(part_keys[p])
                           : (part_lse[p][r] == kNegInf ? 0.0f : std::exp(part_lse[p][r] - mx));
      total += w[p];
    }
    if (total == 0.0f)
      throw Error(ErrorCode::kInvalidArgument, "MergeAttentionParts: the parts have no keys");
    for (int64_t p = 0; p < parts; ++p) w[p] /= total;
    for (int64_t d = 0; d < hd; ++d) {
      float acc = 0.0f;
      for (int64_t p = 0; p < parts; ++p) acc += w[p] * part_out[p][r * hd + d];
      out[r * out_stride + d] = acc;
    }
  }
}

void FusedAttention(const AttentionArgs& a) {
  if (a.lse != nullptr && !FillsLse(a))
    throw Error(ErrorCode::kInvalidArgument,
                "AttentionArgs::lse is filled only by the bf16-cache decode kernel (FillsLse)");
  if (UsesAvx2ManyQueryKernel(a)) {
    FusedAttentionFlashAvx2(a);
    return;
  }
  if (UsesBf16ManyQueryKernel(a)) {
    switch (ChosenFlashKind()) {
      case FlashKind::kF16:
        if (a.int8_scores && a.k16 == nullptr && Cpu().avx512vnni)
          return FusedAttentionFlash<FlashKind::kF16Q8>(a);
        return FusedAttentionFlash<FlashKind::kF16>(a);
      case FlashKind::kF16Q8:  // (not chosen by ChosenFlashKind)
      case FlashKind::kF32:
        return FusedAttentionFlash<FlashKind::kF32>(a);
      case FlashKind::kBf16:
        return FusedAttentionFlash<FlashKind::kBf16>(a);
    }
  }
  if (a.heads > 1) {  // the other kernels take one head at a time
    for (int64_t h = 0; h < a.heads; ++h) {
      AttentionArgs one = a;
      one.heads = 1;
      one.q = a.q + h * a.q_head_stride;
      one.out = a.out + h * a.out_head_stride;
      FusedAttention(one);
    }
    return;
  }
  if (a.k16 != nullptr) {
    if (FillsLse(a)) {
      if (Cpu().avx512_full()) {
        FusedAttentionKV16(a);
      } else {
        FusedAttentionKV16Avx2(a);
      }
      return;
    }
    // Portable: widen the keys and values to float32 and run the generic kernel.
    thread_local std::vector<float> k32, v32;
    k32.resize(static_cast<size_t>(a.nk * a.hd));
    v32.resize(k32.size());
    for (int64_t j = 0; j < a.nk; ++j)
      for (int64_t d = 0; d < a.hd; ++d) {
        k32[j * a.hd + d] = Bf16ToF32(a.k16[KeyTileIndex(j, d, a.hd)]);
        v32[j * a.hd + d] = Bf16ToF32(a.v16[j * a.kv_stride + d]);
      }
    AttentionArgs f = a;
    f.k = k32.data();
    f.v = v32.data();
    f.k16 = f.v16 = nullptr;
    f.k_stride = 0;
    f.kv_stride = a.hd;
    f.kt = nullptr;
    FusedAttentionGeneric(f);
    return;
  }
  if (a.kt != nullptr && a.hd % 16 == 0 && Cpu().avx512f && Cpu().avx512bw && Cpu().avx512vl) {
    FusedAttentionAvx512(a);
    return;
  }
  FusedAttentionGeneric(a);
}

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void FusedAttentionGeneric(
    const AttentionArgs& a) {
  const int64_t hd = a.hd, nk = a.nk;
  thread_local std::vector<float> sbuf;
  thread_local std::vector<float> obuf;
  if (sbuf.size() < static_cast<size_t>(kQBlock * nk)) sbuf.resize(kQBlock * nk);
  if (obuf.size() < static_cast<size_t>(kQBlock * hd)) obuf.resize(kQBlock * hd);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t q0 = 0; q0 < a.nq; q0 += kQBlock) {
    const int64_t qb = std::min(kQBlock, a.nq - q0);
    // Keys any row of the block may see.
    int64_t lim = nk;
    if (a.causal_offset >= 0) lim = std::min(nk, a.causal_offset + q0 + qb);
    float* s = sbuf.data();
    // Scores.
    if (a.kt != nullptr) {
      constexpr int64_t kJ = 256;
      for (int64_t j0 = 0; j0 < lim; j0 += kJ) {
        const int64_t jn = std::min(kJ, lim - j0);
        for (int64_t i = 0; i < qb; ++i) {
          float* si = s + i * nk + j0;
          for (int64_t j = 0; j < jn; ++j) si[j] = 0.0f;
          const float* qi = a.q + (q0 + i) * a.q_stride;
          for (int64_t d = 0; d < hd; ++d) {
            const float qd = qi[d];
            const float* kr = a.kt + d * a.kt_stride + j0;
            for (int64_t j = 0; j < jn; ++j) si[j] += qd * kr[j];
          }
        }
      }
    } else {
      for (int64_t i = 0; i < qb; ++i) {
        const float* qi = a.q + (q0 + i) * a.q_stride;
        for (int64_t j = 0; j < lim; ++j) {
          const float* kj = a.k + j * (a.k_stride > 0 ? a.k_stride : a.kv_stride);
          float acc = 0.0f;
          for (int64_t d = 0; d < hd; ++d) acc += qi[d] * kj[d];
          s[i * nk + j] = acc;
        }
      }
    }
    // Softmax per row with masking.
    for (int64_t i = 0; i < qb; ++i) {
      float* si = s + i * nk;
      const int64_t rl = a.causal_offset >= 0 ? std::min(nk, a.causal_offset + q0 + i + 1) : nk;
      float mx = kNegInf;
      for (int64_t j = 0; j < rl; ++j) {
        const bool ok = a.valid == nullptr || a.valid[j] != 0;
        si[j] = ok ? si[j] * a.scale : kNegInf;
        mx = std::max(mx, si[j]);
      }
      float* o = obuf.data() + i * hd;
      for (int64_t d = 0; d < hd; ++d) o[d] = 0.0f;
      if (mx == kNegInf) {
        // No visible key: uniform over all keys (reference behaviour with finfo.min masking).
        const float p = 1.0f / static_cast<float>(nk);
        for (int64_t j = 0; j < nk; ++j) {
          const float* vj = a.v + j * a.kv_stride;
          for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
        }
        si[0] = 0;  // marks the row as done
        continue;
      }
      for (int64_t j = 0; j < rl; ++j) si[j] = si[j] - mx;
      float sum = 0.0f;
      for (int64_t j = 0; j < rl; ++j) {
        si[j] = ExpApprox(si[j]);
        sum += si[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < rl; ++j) si[j] *= inv;
      for (int64_t j = 0; j < rl; ++j) {
        const float p = si[j];
        const float* vj = a.v + j * a.kv_stride;
        for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
      }
    }
    for (int64_t i = 0; i < qb; ++i)
      std::copy_n(obuf.data() + i * hd, hd, a.out + (q0 + i) * a.out_stride);
  }
}

}  // namespace plm
