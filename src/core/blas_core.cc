#include "core/blas_core.h"

#include <cblas.h>
#include <strings.h>

namespace plm {

const char* BetterOpenBlasCore(const char* detected, const CpuFeatures& cpu) {
  if (detected == nullptr) return nullptr;
  static constexpr const char* kPreAvx2[] = {"Prescott",   "Core2",     "Penryn",      "Dunnington",
                                             "Nehalem",    "Atom",      "Sandybridge", "Katmai",
                                             "Coppermine", "Northwood", "Banias"};
  bool old = false;
  for (const char* name : kPreAvx2) old = old || ::strcasecmp(detected, name) == 0;
  if (!old) return nullptr;
  if (cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return nullptr;
}

const char* OpenBlasCoreName() {
  return openblas_get_corename();
}

}  // namespace plm
