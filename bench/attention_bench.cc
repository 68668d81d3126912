// Single-thread throughput of the many-query fused attention (core/attention.h) at PLM-1B's
// shapes: decoder prefill (one KV head's group of 4 query heads, causal, bf16 KV cache, head
// dim 64) and one vision-tower head over a 448 tile (1025 tokens, bidirectional). The "flops"
// counter counts the useful multiply-adds of QK^T and P·V (causal: only the visible half).
#include <benchmark/benchmark.h>

#include <immintrin.h>

#include <random>
#include <vector>

#include "core/attention.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/key_tiles.h"
#include "core/memory_read.h"
#include "core/thread_pool.h"
#include "plm/huge_page_allocator.h"

namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Random keys and values for `nk` positions of head dim `hd`, as float32 and as bf16 (the cache:
// keys in its tiles).
struct KeysValues {
  std::vector<float> k, v;
  std::vector<uint16_t> k16, v16;
  KeysValues(int64_t nk, int64_t hd)
      : k(Random(static_cast<size_t>(nk * hd), 2)), v(Random(static_cast<size_t>(nk * hd), 3)) {
    std::vector<uint16_t> rows;
    for (size_t i = 0; i < k.size(); ++i) {
      rows.push_back(plm::F32ToBf16(k[i]));
      v16.push_back(plm::F32ToBf16(v[i]));
    }
    k16 = plm::ToKeyTiles(rows.data(), nk, hd);
  }
};

// range(0): tokens, range(1): query heads sharing the keys, range(2): 1 = causal prefill,
// range(3): 1 = int8 scores (the q8 vision tower's AttentionArgs::int8_scores).
void BM_FusedAttentionMany(benchmark::State& st) {
  const int64_t L = st.range(0), heads = st.range(1), hd = 64;
  const bool causal = st.range(2) != 0;
  auto q = Random(static_cast<size_t>(L * heads * hd), 1);
  const KeysValues kv(L, hd);
  std::vector<float> out(q.size());
  plm::AttentionArgs a;
  a.q = q.data();
  a.q_stride = heads * hd;
  a.q_head_stride = hd;
  a.heads = heads;
  if (causal) {  // the decoder reads its bf16 KV cache in place
    a.k16 = kv.k16.data();
    a.v16 = kv.v16.data();
  } else {  // the vision tower passes float32 keys/values
    a.k = kv.k.data();
    a.v = kv.v.data();
  }
  a.kv_stride = hd;
  a.out = out.data();
  a.out_stride = heads * hd;
  a.out_head_stride = hd;
  a.nq = L;
  a.nk = L;
  a.hd = hd;
  a.scale = 0.125f;
  a.causal_offset = causal ? 0 : -1;
  a.bf16 = true;
  a.int8_scores = st.range(3) != 0;
  for (auto _ : st) {
    plm::FusedAttention(a);
    benchmark::DoNotOptimize(out.data());
  }
  const double pairs = causal ? 0.5 * static_cast<double>(L) * static_cast<double>(L + 1)
                              : static_cast<double>(L) * static_cast<double>(L);
  st.counters["flops"] = benchmark::Counter(
      4.0 * hd * static_cast<double>(heads) * pairs * static_cast<double>(st.iterations()),
      benchmark::Counter::kIsRate);
}

BENCHMARK(BM_FusedAttentionMany)
    ->ArgNames({"tokens", "heads", "causal", "int8"})
    ->Args({512, 4, 1, 0})
    ->Args({2048, 4, 1, 0})
    ->Args({9472, 4, 1, 0})
    ->Args({1025, 1, 0, 0})
    ->Args({1025, 1, 0, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The decoder's call for one KV head in a decode step: its `heads` query heads (one new position
// each, rows of q and out) against `nk` cached bf16 keys/values, bf16 products.
plm::AttentionArgs DecodeArgs(const float* q, const uint16_t* k16, const uint16_t* v16, float* out,
                              int64_t heads, int64_t nk, int64_t hd) {
  plm::AttentionArgs a;
  a.q = q;
  a.q_stride = hd;
  a.k16 = k16;
  a.v16 = v16;
  a.kv_stride = hd;
  a.out = out;
  a.out_stride = hd;
  a.nq = heads;
  a.nk = nk;
  a.hd = hd;
  a.scale = 0.125f;
  a.bf16 = true;
  return a;
}

// One decode step against a bf16 KV cache of `tokens` positions: the 4 query heads of one KV head
// (one new position each), as LlamaDecoder calls it. Per token, a PLM-1B step makes 16 layers x 8
// KV heads of these calls (spread over the threads).
void BM_FusedAttentionDecode(benchmark::State& st) {
  const int64_t nk = st.range(0), heads = 4, hd = 64;
  auto q = Random(static_cast<size_t>(heads * hd), 1);
  const KeysValues kv(nk, hd);
  std::vector<float> out(q.size());
  const plm::AttentionArgs a =
      DecodeArgs(q.data(), kv.k16.data(), kv.v16.data(), out.data(), heads, nk, hd);
  for (auto _ : st) {
    plm::FusedAttention(a);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["kv_bytes"] = benchmark::Counter(
      static_cast<double>(2 * nk * hd * 2) * static_cast<double>(st.iterations()),
      benchmark::Counter::kIsRate);
}

BENCHMARK(BM_FusedAttentionDecode)
    ->ArgNames({"context"})
    ->Arg(512)
    ->Arg(9472)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// One decode step's attention over every layer of a PLM-1B-shaped bf16 KV cache (16 layers x 8 KV
// heads x `context` positions: 310 MB at 9472, far beyond the caches), KV heads spread over the
// global ThreadPool as LlamaDecoder does. kv_bytes/s is the memory rate the kernel reaches from
// DRAM; BM_ReadBandwidth in the same run is the machine's plain read rate to compare with.
// parts > 1: each head's keys split into that many calls (DecodePart) merged after
// (MergeAttentionParts), as LlamaDecoder does from 8192 positions.
void BM_FusedAttentionDecodeFromMemory(benchmark::State& st) {
  const int64_t nk = st.range(0), parts = st.range(1), layers = 16, kv_heads = 8, rep = 4, hd = 64;
  const size_t per_head = static_cast<size_t>(nk * hd);
  const size_t total = per_head * layers * kv_heads;
  // Huge pages, as in LlamaDecoder's KV cache.
  std::vector<uint16_t, plm::HugePageAllocator<uint16_t>> k16(total), v16(total);
  for (size_t i = 0; i < total; ++i) {
    k16[i] = plm::F32ToBf16(static_cast<float>(i % 97) * 0.01f - 0.5f);
    v16[i] = plm::F32ToBf16(static_cast<float>(i % 89) * 0.01f - 0.4f);
  }
  auto q = Random(static_cast<size_t>(kv_heads * rep * hd), 1);
  std::vector<float> out(q.size());
  std::vector<float> part_out(static_cast<size_t>(kv_heads * parts * rep * hd));
  std::vector<float> part_lse(static_cast<size_t>(kv_heads * parts * rep));
  plm::ThreadPool& pool = plm::ThreadPool::Global();
  for (auto _ : st) {
    for (int64_t layer = 0; layer < layers; ++layer) {
      pool.ParallelFor(kv_heads * parts, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t kh = t / parts, p = t % parts;
          const size_t at = (layer * kv_heads + kh) * per_head;
          const plm::AttentionArgs a =
              DecodeArgs(q.data() + kh * rep * hd, k16.data() + at, v16.data() + at,
                         out.data() + kh * rep * hd, rep, nk, hd);
          if (parts == 1) {
            plm::FusedAttention(a);
            continue;
          }
          plm::FusedAttention(plm::DecodePart(a, parts, p, part_out.data() + t * rep * hd,
                                              part_lse.data() + t * rep));
        }
      });
      for (int64_t kh = 0; kh < kv_heads && parts > 1; ++kh) {
        const float* outs[16];
        const float* lses[16];
        int64_t keys[16];
        for (int64_t p = 0; p < parts; ++p) {
          outs[p] = part_out.data() + (kh * parts + p) * rep * hd;
          lses[p] = part_lse.data() + (kh * parts + p) * rep;
          keys[p] = plm::DecodeSplitPoint(nk, parts, p + 1) - plm::DecodeSplitPoint(nk, parts, p);
        }
        plm::MergeAttentionParts(parts, outs, lses, keys, rep, hd, out.data() + kh * rep * hd, hd);
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["kv_bytes"] =
      benchmark::Counter(static_cast<double>(2 * total * 2) * static_cast<double>(st.iterations()),
                         benchmark::Counter::kIsRate);
  st.counters["threads"] = pool.num_threads();
}

BENCHMARK(BM_FusedAttentionDecodeFromMemory)
    ->ArgNames({"context", "parts"})
    ->Args({2048, 1})
    ->Args({2048, 2})
    ->Args({9472, 1})
    ->Args({9472, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Read rate of a 1 GiB buffer (huge pages) over the global ThreadPool, with the widest loads
// (ReadSum), without (arg 0) and with (arg 1) software prefetch: the better of the two is the
// reference for the above.
void BM_ReadBandwidth(benchmark::State& st) {
  const size_t n = (size_t{1} << 30) / sizeof(float);
  std::vector<float, plm::HugePageAllocator<float>> buf(n, 1.0f);
  plm::ThreadPool& pool = plm::ThreadPool::Global();
  std::vector<float> sums(static_cast<size_t>(pool.num_threads()));
  const bool prefetch = st.range(0) != 0;
  for (auto _ : st) {
    pool.ParallelFor(pool.num_threads(), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const size_t b = n * t / pool.num_threads(), e = n * (t + 1) / pool.num_threads();
        sums[t] = plm::ReadSum(buf.data() + b, e - b, prefetch);
      }
    });
    benchmark::DoNotOptimize(sums.data());
  }
  st.counters["bytes"] = benchmark::Counter(
      static_cast<double>(n * sizeof(float)) * static_cast<double>(st.iterations()),
      benchmark::Counter::kIsRate);
}

BENCHMARK(BM_ReadBandwidth)
    ->ArgName("prefetch")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Throughput of independent vdpbf16ps (32 bf16 multiply-adds each) and f32 FMAs on one core:
// the ceiling for decode attention, which does 2 multiply-adds per byte of bf16 K/V at 4 query
// heads per KV head. range(0): 0 = vdpbf16ps, 1 = vfmadd (zmm).
__attribute__((target("avx512f,avx512bf16"))) void DotProductLoop(int64_t iters, bool bf16,
                                                                  float* sink) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  __m512 x = _mm512_set1_ps(1.0001f);
  const __m512 y = _mm512_set1_ps(0.9999f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 16; ++i)
      acc[i] =
          bf16 ? _mm512_dpbf16_ps(acc[i], (__m512bh)x, (__m512bh)y) : _mm512_fmadd_ps(acc[i], x, y);
    __asm__ volatile("" : "+v"(x));  // keeps the loop from being folded
  }
  alignas(64) float lanes[16];
  for (int i = 1; i < 16; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  _mm512_store_ps(lanes, acc[0]);
  *sink = lanes[0];
}

void BM_DotProductThroughput(benchmark::State& st) {
  const bool bf16 = st.range(0) == 0;
  if (!plm::Cpu().avx512_full()) {
    st.SkipWithError("needs AVX-512 BF16");
    return;
  }
  constexpr int64_t kIters = 1 << 16;
  float sink = 0;
  for (auto _ : st) DotProductLoop(kIters, bf16, &sink);
  benchmark::DoNotOptimize(sink);
  st.counters["instr"] = benchmark::Counter(16.0 * kIters * static_cast<double>(st.iterations()),
                                            benchmark::Counter::kIsRate);
  st.counters["mac"] = benchmark::Counter(
      (bf16 ? 32.0 : 16.0) * 16.0 * kIters * static_cast<double>(st.iterations()),
      benchmark::Counter::kIsRate);
}

BENCHMARK(BM_DotProductThroughput)->ArgNames({"fma"})->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
