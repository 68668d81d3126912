// GEMM throughput of each weight format at the shapes of PLM-1B (vision fc1, decoder gate/up,
// decode GEMV). GFLOP/s (2·m·n·k per call) are reported as the "flops" counter.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/lowp_gemm.h"
#include "core/memory_read.h"
#include "core/ops.h"
#include "core/thread_pool.h"
#include "plm/huge_page_allocator.h"

namespace {

std::vector<float> Random(size_t n, float scale) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void SetFlops(benchmark::State& st, int64_t m, int64_t n, int64_t k) {
  st.counters["flops"] = benchmark::Counter(static_cast<double>(2 * m * n * k) * st.iterations(),
                                            benchmark::Counter::kIsRate);
}

void BM_Gemm(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2), kind = st.range(3);
  plm::ThreadPool::SetGlobalThreads(static_cast<int>(st.range(4)));
  plm::SetBlasThreads(static_cast<int>(st.range(4)));
  auto x = Random(m * k, 1.0f), w = Random(n * k, 0.05f);
  std::vector<float> y(m * n);
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = plm::F32ToBf16(w[i]);
  plm::Q8Matrix q8;
  plm::Q4Matrix q4;
  std::shared_ptr<const plm::PackedBf16> bf16p;
  if (kind == 2 || kind == 5) q8 = plm::QuantizeQ8(w.data(), n, k);
  if (kind == 3 || kind == 6) q4 = plm::QuantizeQ4(w.data(), n, k);
  // The blocked layouts the models use (kinds 4-6); without AVX-512 BF16/VNNI there are none.
  if (kind == 4) bf16p = plm::PackBf16(wb.data(), n, k);
  if ((kind == 4 && bf16p == nullptr) || (kind == 5 && !plm::PackQ8(&q8)) ||
      (kind == 6 && !plm::PackQ4(&q4))) {
    st.SkipWithError("blocked layout unavailable on this CPU");
    return;
  }
  for (auto _ : st) {
    switch (kind) {
      case 0:
        plm::GemmF32(x.data(), w.data(), nullptr, y.data(), m, n, k);
        break;
      case 1:
        plm::GemmBF16(x.data(), wb.data(), nullptr, y.data(), m, n, k);
        break;
      case 2:
      case 5:
        plm::GemmQ8(x.data(), q8, nullptr, y.data(), m);
        break;
      case 3:
      case 6:
        plm::GemmQ4(x.data(), q4, nullptr, y.data(), m);
        break;
      case 4:
        plm::GemmBF16Packed(x.data(), *bf16p, nullptr, y.data(), m);
        break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  SetFlops(st, m, n, k);
  // Weight bytes read per call (what bounds a decode step when they stream from DRAM).
  const double wbytes = kind == 0                ? 4.0 * n * k
                        : kind == 1 || kind == 4 ? 2.0 * n * k
                        : kind == 2 || kind == 5 ? static_cast<double>(q8.bytes())
                                                 : static_cast<double>(q4.bytes());
  st.counters["weight_bytes"] =
      benchmark::Counter(wbytes * st.iterations(), benchmark::Counter::kIsRate);
}

// kind: 0 f32 (OpenBLAS), 1 bf16, 2 q8, 3 q4 (weights as rows); 4 bf16, 5 q8, 6 q4 in the
// blocked layouts the models pack them into (Linear::Pack); last arg: threads.
BENCHMARK(BM_Gemm)
    ->ArgNames({"m", "n", "k", "kind", "threads"})
    ->ArgsProduct({{1025}, {4096}, {1024}, {0, 1, 2, 4, 5}, {1, 2}})
    ->ArgsProduct({{512}, {8192}, {2048}, {1, 2, 3, 4, 5, 6}, {2}})
    ->ArgsProduct({{1}, {8192}, {2048}, {1, 2, 3, 4, 5, 6}, {1, 2}})
    // A batched decode step (continuous batching): each weight should be read once for m rows.
    ->ArgsProduct({{2, 4, 8}, {8192}, {2048}, {1, 2, 3}, {1, 2}})
    // The same with a matrix larger than the 32 MiB L3 (bf16 128 MiB, q8 64 MiB, q4 36 MiB), so
    // that the weights stream from DRAM as in a real decode step.
    ->ArgsProduct({{1, 2, 4, 8}, {8192}, {8192}, {1, 2, 3}, {2}})
    // m = 1 over 4x that (bf16 512 MiB, q8 256 MiB, q4 144 MiB): DRAM-bound, "weight_bytes" is
    // the bandwidth.
    ->ArgsProduct({{1}, {32768}, {8192}, {1, 2, 3, 4, 5, 6}, {2}})
    // The same bytes in the short rows of the 1B's q/k/v, o, gate/up and lm_head (k = 2048: 4 KB
    // of bf16, 1 KB of q4): each row is a short stream for the hardware prefetchers.
    ->ArgsProduct({{1}, {131072}, {2048}, {1, 2, 3, 4, 5, 6}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The q4 weights of one PLM-1B decode step (16 layers of q/k/v, o, gate/up and down GEMVs, 549
// MB: far beyond the caches) streamed in order as a decode step does, each time between two
// read-bandwidth probes (ReadSum over 1 GiB, plain and prefetching passes): "fraction" is the
// stream's bytes per second over the better of the probes around it, averaged over iterations
// (the bandwidth here swings within seconds, so it is related to probes taken right next to it).
// one_matrix:1 streams the same bytes as one matrix (one GEMV): what the sequence of 64 smaller
// jobs costs over one long stream.
void BM_DecodeStreamQ4(benchmark::State& st) {
  plm::ThreadPool::SetGlobalThreads(static_cast<int>(st.range(0)));
  plm::ThreadPool& pool = plm::ThreadPool::Global();
  const int64_t D = 2048, I = 8192;
  const std::pair<int64_t, int64_t> shapes[] = {{D + 1024, D}, {D, D}, {2 * I, D}, {D, I}};
  std::vector<plm::Q4Matrix> ws;
  double bytes = 0;
  for (const auto& [n, k] : shapes) {
    const auto w = Random(static_cast<size_t>(n * k), 0.05f);
    for (int layer = 0; layer < 16; ++layer) {
      ws.push_back(plm::QuantizeQ4(w.data(), n, k));
      if (!plm::PackQ4(&ws.back())) {
        st.SkipWithError("blocked q4 layout unavailable on this CPU");
        return;
      }
    }
  }
  std::vector<const plm::Q4Matrix*> order;  // layer by layer, as a decode step reads them
  for (int layer = 0; layer < 16; ++layer)
    for (size_t s = 0; s < 4; ++s) order.push_back(&ws[s * 16 + static_cast<size_t>(layer)]);
  if (st.range(1) != 0) {  // the same rows as one matrix
    int64_t rows = 0;
    for (const auto& [n, k] : shapes) rows += 16 * n * k / D;
    ws.clear();
    ws.push_back(plm::QuantizeQ4(Random(static_cast<size_t>(rows * D), 0.05f).data(), rows, D));
    plm::PackQ4(&ws.back());
    order = {&ws.back()};
  }
  for (const auto* q : order) bytes += static_cast<double>(q->bytes());
  const auto x = Random(static_cast<size_t>(I), 1.0f);
  std::vector<float> y(static_cast<size_t>(order.front()->n > 2 * I ? order.front()->n : 2 * I));
  std::vector<float, plm::HugePageAllocator<float>> probe_buf((size_t{1} << 30) / sizeof(float),
                                                              1.0f);
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto probe = [&] {
    double best = 0;
    for (bool prefetch : {false, true}) {
      std::vector<float> sums(static_cast<size_t>(pool.num_threads()));
      const auto t0 = now();
      pool.ParallelFor(pool.num_threads(), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const size_t n = probe_buf.size(), p = static_cast<size_t>(pool.num_threads());
          sums[t] = plm::ReadSum(probe_buf.data() + n * t / p, n / p, prefetch);
        }
      });
      benchmark::DoNotOptimize(sums.data());
      best = std::max(best, static_cast<double>(probe_buf.size() * sizeof(float)) /
                                std::chrono::duration<double>(now() - t0).count());
    }
    return best;
  };
  double fraction = 0, before = probe();
  for (auto _ : st) {
    const auto t0 = now();
    for (const auto* q : order) plm::GemmQ4(x.data(), *q, nullptr, y.data(), 1);
    const double rate = bytes / std::chrono::duration<double>(now() - t0).count();
    const double after = probe();
    fraction += rate / std::max(before, after);
    before = after;
  }
  st.counters["fraction"] = benchmark::Counter(fraction, benchmark::Counter::kAvgIterations);
}

BENCHMARK(BM_DecodeStreamQ4)
    ->ArgNames({"threads", "one_matrix"})
    ->ArgsProduct({{2}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
