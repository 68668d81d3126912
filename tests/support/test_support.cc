#include "support/test_support.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/cpu_features.h"

namespace plm::test {

namespace fs = std::filesystem;

std::string FixturesDir() {
  const char* env = std::getenv("PLM_FIXTURES");
  if (env != nullptr && *env != '\0') return env;
  return PLM_FIXTURES_DEFAULT;
}

std::vector<std::string> ListDir(const std::string& dir, bool dirs_only) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (dirs_only && !e.is_directory()) continue;
    if (!dirs_only && !e.is_regular_file()) continue;
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool PathExists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

namespace {
std::vector<std::string>& TempDirs() {
  // Leaked on purpose: it must outlive the atexit handler that reads it.
  static auto* dirs = new std::vector<std::string>();
  return *dirs;
}
void RemoveTempDirs() {
  for (const auto& d : TempDirs()) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
}
}  // namespace

std::string MakeTempDir() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(RemoveTempDirs); });
  std::string tmpl = (fs::temp_directory_path() / "plm-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  if (p == nullptr) std::abort();
  TempDirs().push_back(tmpl);
  return tmpl;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

ErrorStats Compare(const float* got, const float* want, size_t n) {
  ErrorStats s;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    // A NaN in either side must fail, so it counts as infinite error.
    const double e = std::isnan(d) ? INFINITY : d;
    s.max_abs = std::max(s.max_abs, e);
    s.max_ref = std::max(s.max_ref, std::fabs(static_cast<double>(want[i])));
    sum += e;
  }
  s.mean_abs = n ? sum / static_cast<double>(n) : 0;
  return s;
}

std::vector<std::string> FixtureModels() {
  std::vector<std::string> out;
  const std::string root = FixturesDir() + "/models";
  for (const auto& m : ListDir(root, true))
    if (PathExists(root + "/" + m + "/config.json")) out.push_back(root + "/" + m);
  return out;
}

std::string AnyFixtureImage() {
  const std::string dir = FixturesDir() + "/inputs";
  for (const char* ext : {".png", ".jpg"})
    for (const auto& f : ListDir(dir, false))
      if (f.size() > 4 && f.substr(f.size() - 4) == ext) return dir + "/" + f;
  return "";
}

void ForEachCpuPath(const std::function<void(bool native)>& run) {
  const CpuFeatures saved = Cpu();
  run(true);
  SetCpuFeaturesForTesting(CpuFeatures{});
  run(false);
  SetCpuFeaturesForTesting(saved);
}

CpuFeatures Avx2Only(CpuFeatures f) {
  f.avx512f = f.avx512bw = f.avx512dq = f.avx512vl = f.avx512bf16 = f.avx512vnni = false;
  f.avx512fp16 = f.amx_bf16 = false;
  return f;
}

}  // namespace plm::test
