#include "core/thread_pool.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

namespace plm {

namespace {

// How long a thread polls before it sleeps (PLM_SPIN_US; 0 disables spinning).
std::chrono::microseconds SpinBudget() {
  static const std::chrono::microseconds budget = [] {
    const char* e = std::getenv("PLM_SPIN_US");
    if (e == nullptr || *e == '\0') return std::chrono::microseconds(50);
    char* end = nullptr;
    const long v = std::strtol(e, &end, 10);
    return std::chrono::microseconds(end != e && v >= 0 && v <= 1000000 ? v : 50);
  }();
  return budget;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls `done` for up to the spin budget; true when it became true.
template <typename F>
bool SpinUntil(const F& done) {
  const auto budget = SpinBudget();
  if (budget.count() == 0) return done();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (done()) return true;
    CpuRelax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() - t0 > budget) return done();
  }
}

}  // namespace

int DefaultThreadCount() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : DefaultThreadCount()) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks(const std::function<void(int64_t, int64_t)>& fn, int64_t n,
                           int64_t grain, std::exception_ptr* err) {
  const int64_t parts = 2 * int64_t{n_threads_};
  int64_t b = next_.load(std::memory_order_relaxed);
  for (;;) {
    // Guided: large chunks first (long sequential streams, few calls), smaller ones at the end.
    if (b >= n) return;
    const int64_t size = std::max(grain, (n - b + parts - 1) / parts);
    if (!next_.compare_exchange_weak(b, b + size, std::memory_order_relaxed)) continue;
    try {
      fn(b, std::min(n, b + size));
    } catch (...) {
      if (!*err) *err = std::current_exception();
      next_.store(n, std::memory_order_relaxed);  // the others stop at their next claim
      return;
    }
    b = next_.load(std::memory_order_relaxed);
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!SpinUntil(ready)) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    std::exception_ptr err;
    RunChunks(*job_, job_n_, job_grain_, &err);
    if (err) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = err;
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be checking pending_ under mu_
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mu_);
  job_ = &fn;
  job_n_ = n;
  job_grain_ = std::max<int64_t>(1, n / (int64_t{n_threads_} * kMinChunksPerThread));
  next_.store(0, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();  // no system call when every worker is still spinning
  std::exception_ptr err;
  RunChunks(fn, n, job_grain_, &err);
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (SpinUntil(done)) {
    lock.lock();  // error_ is written under mu_
  } else {
    lock.lock();
    cv_done_.wait(lock, done);
  }
  if (!err) err = error_;
  job_ = nullptr;
  if (err) std::rethrow_exception(err);
}

namespace {
std::unique_ptr<ThreadPool>& GlobalPtr() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
std::mutex& GlobalMu() {
  static std::mutex mu;
  return mu;
}
}  // namespace

ThreadPool& ThreadPool::Global() {
  std::lock_guard<std::mutex> lock(GlobalMu());
  auto& p = GlobalPtr();
  if (!p) p = std::make_unique<ThreadPool>(0);
  return *p;
}

void ThreadPool::SetGlobalThreads(int n_threads) {
  std::lock_guard<std::mutex> lock(GlobalMu());
  auto& p = GlobalPtr();
  const int want = n_threads > 0 ? n_threads : DefaultThreadCount();
  if (p && p->num_threads() == want) return;
  p = std::make_unique<ThreadPool>(want);
}

}  // namespace plm
