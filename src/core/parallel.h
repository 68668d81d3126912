// Parallel-for on the OpenMP team that oneDNN (Debian's build) runs on. Our own kernels use it
// instead of ThreadPool so that the OpenMP workers are not left spinning on the cores while
// another pool computes between two GEMMs. Thread count: ThreadPool::Global().num_threads().
#pragma once

#include <cstdint>
#include <functional>

namespace plm {

// Runs fn(begin, end) over [0, n) in contiguous chunks, one per thread; rethrows the first
// exception. Nested calls run serially.
void ParallelForOmp(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace plm
