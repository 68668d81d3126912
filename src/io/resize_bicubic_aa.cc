#include "io/resize_bicubic_aa.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "plm/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PLM_RESIZE_X86 1
#endif

namespace plm {

namespace {

// Keys cubic with a = -0.5, the kernel PyTorch uses for antialiased bicubic (PIL-compatible).
double CubicKernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Splits [0, n) into contiguous chunks run on up to `threads` threads (the caller is one of them).
template <typename Fn>
void ParallelFor(int n, int threads, const Fn& fn) {
  threads = std::max(1, std::min(threads, n));
  if (threads == 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads - 1));
  const int chunk = (n + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const int b = t * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

// ---------------------------------------------------------------------------------------------
// Scalar reference passes.

void HorizontalScalar(const uint8_t* src, int src_w, int channels, uint8_t* dst, const AAFilter& f,
                      int row_begin, int row_end) {
  const int32_t round = 1 << (f.precision - 1);
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* s = src + static_cast<size_t>(y) * src_w * channels;
    uint8_t* d = dst + static_cast<size_t>(y) * f.out_size * channels;
    for (int x = 0; x < f.out_size; ++x) {
      const int16_t* w = &f.weights[static_cast<size_t>(x) * f.taps];
      const uint8_t* p = s + static_cast<size_t>(f.start[x]) * channels;
      for (int c = 0; c < channels; ++c) {
        int32_t acc = round;
        for (int k = 0; k < f.count[x]; ++k) acc += w[k] * p[k * channels + c];
        d[x * channels + c] = static_cast<uint8_t>(std::clamp(acc >> f.precision, 0, 255));
      }
    }
  }
}

void VerticalScalar(const uint8_t* src, int row_bytes, uint8_t* dst, const AAFilter& f,
                    int row_begin, int row_end) {
  const int32_t round = 1 << (f.precision - 1);
  for (int y = row_begin; y < row_end; ++y) {
    const int16_t* w = &f.weights[static_cast<size_t>(y) * f.taps];
    const uint8_t* s = src + static_cast<size_t>(f.start[y]) * row_bytes;
    uint8_t* d = dst + static_cast<size_t>(y) * row_bytes;
    for (int i = 0; i < row_bytes; ++i) {
      int32_t acc = round;
      for (int k = 0; k < f.count[y]; ++k) acc += w[k] * s[static_cast<size_t>(k) * row_bytes + i];
      d[i] = static_cast<uint8_t>(std::clamp(acc >> f.precision, 0, 255));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AVX2 passes. Integer sums are exact, so any grouping of the taps gives the scalar result.

#ifdef PLM_RESIZE_X86

// Width pass for 3-channel rows: four taps per step. A 16-byte load holds pixels k..k+3; each
// 128-bit lane gathers two of them as int16 pairs [r r g g b b 0 0] for one madd with the weights.
__attribute__((target("avx2"))) void HorizontalAvx2Rgb(const uint8_t* src, int src_w, uint8_t* dst,
                                                       const AAFilter& f, int row_begin,
                                                       int row_end) {
  const __m256i shuffle =
      _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,  //
                       6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  const __m256i pair_index = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m128i round = _mm_set1_epi32(1 << (f.precision - 1));
  const int row_bytes = src_w * 3;
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* s = src + static_cast<size_t>(y) * row_bytes;
    uint8_t* d = dst + static_cast<size_t>(y) * f.out_size * 3;
    for (int x = 0; x < f.out_size; ++x) {
      const int16_t* w = &f.weights[static_cast<size_t>(x) * f.taps];
      const int n = f.count[x];
      const int start = f.start[x];
      __m256i acc = _mm256_setzero_si256();
      int k = 0;
      // The 16-byte load must stay inside this row.
      for (; k + 4 <= n && (start + k) * 3 + 16 <= row_bytes; k += 4) {
        const __m128i px = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + (start + k) * 3));
        const __m256i pairs = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(px), shuffle);
        const __m128i w4 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + k));
        const __m256i wv = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(w4), pair_index);
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, wv));
      }
      __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
      sum = _mm_add_epi32(sum, round);
      alignas(16) int32_t lanes[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(lanes), sum);
      const uint8_t* p = s + static_cast<size_t>(start) * 3;
      for (; k < n; ++k) {
        lanes[0] += w[k] * p[k * 3 + 0];
        lanes[1] += w[k] * p[k * 3 + 1];
        lanes[2] += w[k] * p[k * 3 + 2];
      }
      for (int c = 0; c < 3; ++c) {
        d[x * 3 + c] = static_cast<uint8_t>(std::clamp(lanes[c] >> f.precision, 0, 255));
      }
    }
  }
}

// Height pass: 32 bytes of a row per step, two source rows at a time interleaved as int16 pairs.
// unpack/pack work per 128-bit lane, and packing undoes the unpacking, so bytes stay in order.
__attribute__((target("avx2"))) void VerticalAvx2(const uint8_t* src, int row_bytes, uint8_t* dst,
                                                  const AAFilter& f, int row_begin, int row_end) {
  const int32_t round_value = 1 << (f.precision - 1);
  const __m256i round = _mm256_set1_epi32(round_value);
  const __m256i zero = _mm256_setzero_si256();
  const __m128i shift = _mm_cvtsi32_si128(f.precision);
  for (int y = row_begin; y < row_end; ++y) {
    const int16_t* w = &f.weights[static_cast<size_t>(y) * f.taps];
    const int n = f.count[y];
    const uint8_t* s = src + static_cast<size_t>(f.start[y]) * row_bytes;
    uint8_t* d = dst + static_cast<size_t>(y) * row_bytes;
    int i = 0;
    for (; i + 32 <= row_bytes; i += 32) {
      __m256i acc0 = round, acc1 = round, acc2 = round, acc3 = round;
      for (int k = 0; k < n; k += 2) {
        const bool pair = k + 1 < n;
        const __m256i a = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(s + static_cast<size_t>(k) * row_bytes + i));
        const __m256i b = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                     s + static_cast<size_t>(k + 1) * row_bytes + i))
                               : zero;
        const int32_t w_pair =
            static_cast<uint16_t>(w[k]) |
            (pair ? static_cast<int32_t>(static_cast<uint16_t>(w[k + 1])) << 16 : 0);
        const __m256i wv = _mm256_set1_epi32(w_pair);
        const __m256i a_lo = _mm256_unpacklo_epi8(a, zero), a_hi = _mm256_unpackhi_epi8(a, zero);
        const __m256i b_lo = _mm256_unpacklo_epi8(b, zero), b_hi = _mm256_unpackhi_epi8(b, zero);
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a_lo, b_lo), wv));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a_lo, b_lo), wv));
        acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(_mm256_unpacklo_epi16(a_hi, b_hi), wv));
        acc3 = _mm256_add_epi32(acc3, _mm256_madd_epi16(_mm256_unpackhi_epi16(a_hi, b_hi), wv));
      }
      acc0 = _mm256_sra_epi32(acc0, shift);
      acc1 = _mm256_sra_epi32(acc1, shift);
      acc2 = _mm256_sra_epi32(acc2, shift);
      acc3 = _mm256_sra_epi32(acc3, shift);
      // Saturating packs clamp to [0, 255] exactly like the scalar clamp.
      const __m256i p01 = _mm256_packs_epi32(acc0, acc1);
      const __m256i p23 = _mm256_packs_epi32(acc2, acc3);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_packus_epi16(p01, p23));
    }
    for (; i < row_bytes; ++i) {
      int32_t acc = round_value;
      for (int k = 0; k < n; ++k) acc += w[k] * s[static_cast<size_t>(k) * row_bytes + i];
      d[i] = static_cast<uint8_t>(std::clamp(acc >> f.precision, 0, 255));
    }
  }
}

bool CpuHasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

#endif  // PLM_RESIZE_X86

// Rows per thread below which spawning threads costs more than it saves.
constexpr int64_t kMinWorkPerThread = 1 << 20;  // multiply-adds

int ThreadsFor(int64_t work, int max_threads) {
  const int64_t t = std::max<int64_t>(1, work / kMinWorkPerThread);
  return static_cast<int>(std::min<int64_t>(t, max_threads));
}

void HorizontalPass(const uint8_t* src, int src_w, int src_h, int channels, uint8_t* dst,
                    const AAFilter& f, int threads, ResizeImpl impl) {
  const int64_t work = static_cast<int64_t>(src_h) * f.out_size * f.taps * channels;
  ParallelFor(src_h, ThreadsFor(work, threads), [&](int b, int e) {
#ifdef PLM_RESIZE_X86
    if (impl == ResizeImpl::kAuto && channels == 3 && CpuHasAvx2()) {
      HorizontalAvx2Rgb(src, src_w, dst, f, b, e);
      return;
    }
#endif
    (void)impl;
    HorizontalScalar(src, src_w, channels, dst, f, b, e);
  });
}

void VerticalPass(const uint8_t* src, int row_bytes, uint8_t* dst, const AAFilter& f, int threads,
                  ResizeImpl impl) {
  const int64_t work = static_cast<int64_t>(f.out_size) * row_bytes * f.taps;
  ParallelFor(f.out_size, ThreadsFor(work, threads), [&](int b, int e) {
#ifdef PLM_RESIZE_X86
    if (impl == ResizeImpl::kAuto && CpuHasAvx2()) {
      VerticalAvx2(src, row_bytes, dst, f, b, e);
      return;
    }
#endif
    (void)impl;
    VerticalScalar(src, row_bytes, dst, f, b, e);
  });
}

}  // namespace

AAFilter ComputeAAFilter(int in_size, int out_size) {
  if (in_size <= 0 || out_size <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "resize: sizes must be positive (" +
                                                 std::to_string(in_size) + " -> " +
                                                 std::to_string(out_size) + ")");
  }
  AAFilter f;
  f.in_size = in_size;
  f.out_size = out_size;
  // Weights in double exactly as the reference computes them (spec §2.5).
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double inv_scale = scale >= 1.0 ? 1.0 / scale : 1.0;
  f.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  std::vector<double> w(static_cast<size_t>(out_size) * f.taps, 0.0);
  f.start.resize(out_size);
  f.count.resize(out_size);
  double wt_max = 0.0;
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t xmax = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    const int n = static_cast<int>(std::min<int64_t>(xmax - xmin, f.taps));
    double* wi = &w[static_cast<size_t>(i) * f.taps];
    double total = 0.0;
    for (int j = 0; j < n; ++j) {
      wi[j] = CubicKernel((static_cast<double>(j + xmin) - center + 0.5) * inv_scale);
      total += wi[j];
    }
    if (total != 0.0) {
      for (int j = 0; j < n; ++j) {
        wi[j] /= total;
        wt_max = std::max(wt_max, wi[j]);
      }
    }
    f.start[i] = static_cast<int32_t>(xmin);
    f.count[i] = std::max(n, 0);
  }
  // The largest precision that keeps the biggest weight (times 2) inside int16.
  int precision = 0;
  for (; precision < 22; ++precision) {
    const int next = static_cast<int>(0.5 + wt_max * static_cast<double>(1 << (precision + 1)));
    if (next >= (1 << 15)) break;
  }
  f.precision = precision;
  f.weights.resize(w.size());
  const double one = static_cast<double>(1 << precision);
  for (size_t k = 0; k < w.size(); ++k) {
    const double v = w[k] * one;
    f.weights[k] = static_cast<int16_t>(v < 0 ? std::trunc(v - 0.5) : std::trunc(v + 0.5));
  }
  return f;
}

int ResolveResizeThreads(int num_threads) {
  if (num_threads > 0) return std::min(num_threads, 256);
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hw == 0 ? 1u : hw, 1u, 16u));
}

void ResizeBicubicAA(const uint8_t* src, int src_w, int src_h, int channels, uint8_t* dst,
                     int dst_w, int dst_h, int num_threads, ResizeImpl impl) {
  if (src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0 || channels < 1 || channels > 4) {
    throw Error(ErrorCode::kInvalidArgument,
                "resize: bad sizes " + std::to_string(src_w) + "x" + std::to_string(src_h) +
                    " -> " + std::to_string(dst_w) + "x" + std::to_string(dst_h) + " (" +
                    std::to_string(channels) + " channels)");
  }
  const int threads = ResolveResizeThreads(num_threads);
  const bool horizontal = src_w != dst_w, vertical = src_h != dst_h;
  if (!horizontal && !vertical) {
    std::memcpy(dst, src, static_cast<size_t>(src_w) * src_h * channels);
    return;
  }
  if (!vertical) {
    HorizontalPass(src, src_w, src_h, channels, dst, ComputeAAFilter(src_w, dst_w), threads, impl);
    return;
  }
  // The reference stores the width pass as uint8 before the height pass.
  const uint8_t* rows = src;
  std::vector<uint8_t> tmp;
  if (horizontal) {
    tmp.resize(static_cast<size_t>(src_h) * dst_w * channels);
    HorizontalPass(src, src_w, src_h, channels, tmp.data(), ComputeAAFilter(src_w, dst_w), threads,
                   impl);
    rows = tmp.data();
  }
  VerticalPass(rows, dst_w * channels, dst, ComputeAAFilter(src_h, dst_h), threads, impl);
}

}  // namespace plm
