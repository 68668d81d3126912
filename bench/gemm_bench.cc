// GEMM throughput of each weight format at the shapes of PLM-1B (vision fc1, decoder gate/up,
// decode GEMV). GFLOP/s (2·m·n·k per call) are reported as the "flops" counter.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/lowp_gemm.h"
#include "core/ops.h"
#include "core/thread_pool.h"

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
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
