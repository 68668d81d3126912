#include "core/parallel.h"

#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>

#include "core/thread_pool.h"

// libgomp's entry points (what -fopenmp emits for `#pragma omp parallel`), so that this file
// needs no OpenMP compile flags.
extern "C" {
void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_in_parallel(void);
}

namespace plm {

namespace {

struct Ctx {
  int64_t n;
  const std::function<void(int64_t, int64_t)>* fn;
  std::mutex mu;
  std::exception_ptr error;
};

void Trampoline(void* p) {
  auto* c = static_cast<Ctx*>(p);
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
  const int64_t b = c->n * t / nt, e = c->n * (t + 1) / nt;
  if (b >= e) return;
  try {
    (*c->fn)(b, e);
  } catch (...) {
    std::lock_guard<std::mutex> lock(c->mu);
    if (!c->error) c->error = std::current_exception();
  }
}

}  // namespace

void ParallelForOmp(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  static const bool use_pool = [] {
    const char* e = std::getenv("PLM_PARALLEL");
    return e != nullptr && std::string(e) == "pool";
  }();
  if (use_pool) {
    ThreadPool::Global().ParallelFor(n, fn);
    return;
  }
  const int threads = ThreadPool::Global().num_threads();
  if (threads <= 1 || n == 1 || omp_in_parallel()) {
    fn(0, n);
    return;
  }
  Ctx c;
  c.n = n;
  c.fn = &fn;
  GOMP_parallel(&Trampoline, &c, static_cast<unsigned>(threads), 0);
  if (c.error) std::rethrow_exception(c.error);
}

}  // namespace plm
