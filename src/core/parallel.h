// Parallel-for of our own kernels around oneDNN GEMMs (vision, prefill): it runs on the OpenMP
// team that Debian's oneDNN uses, so OpenMP workers that spin after a GEMM do not compete with a
// second pool for the cores. Decode-sized work (no oneDNN calls) uses ThreadPool::Global()
// directly: its condition variables cope far better with cores shared with other processes.
// PLM_PARALLEL=pool sends everything to the ThreadPool.
#pragma once

#include <cstdint>
#include <functional>

namespace plm {

// Runs fn(begin, end) over [0, n) in contiguous chunks, one per thread (with PLM_PARALLEL=pool:
// ThreadPool::ParallelFor's chunks, several per thread); rethrows the first exception. Nested
// calls run serially.
void ParallelForOmp(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace plm
