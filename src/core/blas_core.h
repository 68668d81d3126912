// Which kernel set OpenBLAS (the float32 reference path's GEMM) should run on this CPU.
#pragma once

#include "core/cpu_features.h"

namespace plm {

// OpenBLAS chooses its kernels for the CPU when it is loaded. Version 0.3.21 (Debian 12) does not
// know recent Xeons (family 6 model 207 reports "Prescott", its SSE3 kernels: 28 GFLOP/s per core
// there against 127 with its SkylakeX kernels). Given OpenBLAS's choice (openblas_get_corename())
// and the CPU's features, returns the kernel set to request through OPENBLAS_CORETYPE — SkylakeX
// with AVX-512, Haswell with AVX2 + FMA — when the choice is one of OpenBLAS's pre-AVX2 kernel
// sets, else nullptr (a fitting choice is kept, including other vendors' and AVX2 ones).
const char* BetterOpenBlasCore(const char* detected, const CpuFeatures& cpu);

// OpenBLAS's kernel set in this process.
const char* OpenBlasCoreName();

}  // namespace plm
