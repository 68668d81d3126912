// What a parallel region costs beyond its work under the OpenMP wait settings of the process
// (OMP_WAIT_POLICY, GOMP_SPINCOUNT; the `plm` binary sets GOMP_SPINCOUNT=30000 unless the user
// chose, this program takes them as given): ParallelForOmp (core/parallel.h, the vision tower's
// and prefill's regions) over two halves of ~200 us of arithmetic, then `gap_us` of serial work
// on the calling thread, as between the regions of one layer. overhead_us = time per region -
// the work - the gap: the waiting threads' wake-up (a sleeping vCPU can take 100+ us) and the
// barriers. Compare e.g. `OMP_WAIT_POLICY=passive build-perf/bench/openmp_wait_bench` with
// `GOMP_SPINCOUNT=30000 build-perf/bench/openmp_wait_bench`.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>

#include "core/parallel.h"

namespace {

double Work(int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::sqrt(static_cast<double>(i) + 1.0);
  return s;
}

// Iterations of Work taking ~us microseconds on this thread.
int64_t Calibrate(double us) {
  constexpr int64_t kProbe = 200000;
  const auto t0 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(Work(kProbe));
  const double took =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<int64_t>(static_cast<double>(kProbe) * us / took);
}

void BM_ParallelRegion(benchmark::State& st) {
  constexpr double kWorkUs = 200.0;
  const double gap_us = static_cast<double>(st.range(0));
  const int64_t work = Calibrate(kWorkUs), gap = Calibrate(gap_us);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) {
    plm::ParallelForOmp(2, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) benchmark::DoNotOptimize(Work(work));
    });
    benchmark::DoNotOptimize(Work(gap));
  }
  const double per_region_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(st.iterations());
  st.counters["overhead_us"] = per_region_us - kWorkUs - gap_us;
}

BENCHMARK(BM_ParallelRegion)
    ->ArgName("gap_us")
    ->Arg(5)
    ->Arg(50)
    ->Arg(200)
    ->Arg(1000)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
