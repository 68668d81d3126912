// plm — ask PerceptionLM about images and videos from the terminal.
//
// Exit codes: 0 success, 1 unexpected failure, 2 usage / invalid argument, 3 not found,
// 4 corrupt input, 5 unsupported, 6 context overflow, 7 I/O, 8 limit exceeded, 9 internal error.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <utility>

#include "commands.h"
#include "core/blas_core.h"
#include "core/cpu_features.h"
#include "plm/error.h"

namespace {

// oneDNN's OpenMP runtime (libgomp) reads OMP_WAIT_POLICY and GOMP_SPINCOUNT when it is loaded,
// before main. Its default (spin ~300000 times at every barrier before sleeping) makes vision and
// prefill 1.4x to several times slower as soon as another process wants one of the cores; a
// passive wait (sleep at once) costs 0.1-0.25 ms per parallel region on the Intel KVM guest of
// sessions 13-19 (waking a halted vCPU), up to ~10 % of a q8 vision tile. A bounded spin of 30000
// turns (~0.1-0.3 ms there) covers the short gaps between the regions of one GEMM or layer and
// sleeps in longer ones; with another process busy it is ~7-10 % slower than passive
// (docs/PERFORMANCE.md, "Session 19"). So unless the user chose a policy or a spin count, set
// GOMP_SPINCOUNT=30000 and re-execute once; if that fails the run simply goes on with the default.
// OpenBLAS (the float32 reference path's GEMM) starts its worker threads when it is loaded, and
// they poll with sched_yield for 2^28 cycles (~70 ms) at start and after every call, taking CPU
// time from the OpenMP threads of the vision tower and prefill; OPENBLAS_THREAD_TIMEOUT=4 (2^4
// cycles) makes them sleep at once. OpenBLAS also picks its kernels when loaded, and picks SSE3
// ones on CPUs it does not know (core/blas_core.h): OPENBLAS_CORETYPE then names the right set.
// Each is set unless the user chose it.
void ChooseRuntimeSettings(char** argv) {
  bool changed = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("GOMP_SPINCOUNT", "30000", 1);
    changed = true;
  }
  if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr) {
    ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    changed = true;
  }
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    if (const char* core = plm::BetterOpenBlasCore(plm::OpenBlasCoreName(), plm::Cpu())) {
      ::setenv("OPENBLAS_CORETYPE", core, 1);
      changed = true;
    }
  }
  if (changed) ::execv("/proc/self/exe", argv);
}

}  // namespace

int main(int argc, char** argv) {
  ChooseRuntimeSettings(argv);
  CLI::App app{"plm — PerceptionLM inference on the CPU (images, multi-image prompts, videos)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("plm ") + PLM_VERSION);
  std::map<CLI::App*, plm::cli::Command> commands;
  auto add = [&](plm::cli::Command (*reg)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    plm::cli::Command c = reg(app);
    auto subs = app.get_subcommands({});
    if (subs.size() > before) commands[subs.back()] = std::move(c);
  };
  add(&plm::cli::RegisterRun);
  add(&plm::cli::RegisterChat);
  add(&plm::cli::RegisterInfo);
  add(&plm::cli::RegisterBench);
  add(&plm::cli::RegisterServe);
  add(&plm::cli::RegisterQuantize);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "plm: %s (see 'plm --help')\n", e.what());
    return 2;
  }
  for (auto& [sub, cmd] : commands) {
    if (!sub->parsed()) continue;
    try {
      return cmd();
    } catch (const plm::Error& e) {
      std::fprintf(stderr, "plm: error: %s\n", e.what());
      return static_cast<int>(e.code());
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "plm: error: out of memory\n");
      return 7;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plm: error: %s\n", e.what());
      return 1;
    }
  }
  return 2;
}
