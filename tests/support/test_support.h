// Shared helpers for the test programs: where the fixtures are, temp dirs, comparisons.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/cpu_features.h"

namespace plm::test {

// The fixture folder: $PLM_FIXTURES if set, else ../shared/fixtures relative to the source tree.
std::string FixturesDir();
// Names of the sub-folders / files of `dir` (sorted); empty when `dir` does not exist.
std::vector<std::string> ListDir(const std::string& dir, bool dirs_only);
bool PathExists(const std::string& path);
// A fresh empty temporary directory, removed at process exit.
std::string MakeTempDir();
void WriteFile(const std::string& path, const std::string& contents);
// Fixture model folders (those with a config.json), full paths.
std::vector<std::string> FixtureModels();
// A decodable image of the fixtures' inputs folder: the first .png, else the first .jpg; "" if
// none.
std::string AnyFixtureImage();

struct ErrorStats {
  double max_abs = 0;
  double max_ref = 0;
  double mean_abs = 0;
  double rel() const { return max_ref > 0 ? max_abs / max_ref : max_abs; }
};
ErrorStats Compare(const float* got, const float* want, size_t n);

// Runs `run(native)` on this CPU's kernels (native = true) and then on the portable fallbacks
// (CPU features cleared, as PLM_CPU=generic), restoring the detected features afterwards.
void ForEachCpuPath(const std::function<void(bool native)>& run);

// `f` with the AVX-512 features cleared (as PLM_CPU=avx2): a CPU that runs the AVX2 kernels
// (core/gemv_avx2.h, core/attention_avx2.h) when f has AVX2, FMA and F16C.
CpuFeatures Avx2Only(CpuFeatures f);

}  // namespace plm::test
