// Reading memory as fast as this CPU can, for measuring the machine's read bandwidth (`plm bench`,
// attention_bench): the widest vector loads available, several independent accumulators.
#pragma once

#include <cstddef>

namespace plm {

// The sum of b[0, n) (the result only keeps the loads from being optimised away). With
// `prefetch`, lines 8 KiB ahead are also requested into L2 in software. Measured here: a plain
// loop compiled for baseline x86-64 (SSE) read ~20 % slower than AVX-512 loads in fast minutes
// (62 vs 77 GB/s), and the prefetch reads 5-10 % faster in slow ones (a busy memory system, long
// latencies) while changing little in fast ones, so a bandwidth probe should take the better of
// both.
float ReadSum(const float* b, size_t n, bool prefetch);

}  // namespace plm
