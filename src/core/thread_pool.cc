#include "core/thread_pool.h"

#include <unistd.h>

#include <algorithm>
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
    : n_threads_(n_threads > 0 ? n_threads : DefaultThreadCount()),
      ranges_(static_cast<size_t>(n_threads_)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks(const std::function<void(int64_t, int64_t)>& fn, int t, int64_t grain,
                           std::exception_ptr* err) {
  auto run = [&](int64_t b, int64_t e) {
    try {
      fn(b, e);
      return true;
    } catch (...) {
      if (!*err) *err = std::current_exception();
      for (Range& r : ranges_) r.be.store(0, std::memory_order_relaxed);  // the others stop
      return false;
    }
  };
  // Its own range from the front: a quarter of what is left at a time, so each claim continues
  // where the last one ended (one stream) while a thief can still take from the back.
  std::atomic<uint64_t>& own = ranges_[static_cast<size_t>(t)].be;
  for (uint64_t r = own.load(std::memory_order_relaxed);;) {
    const int64_t b = RangeBegin(r), e = RangeEnd(r);
    if (b >= e) break;
    const int64_t size = std::max(grain, (e - b) / 4);
    const int64_t to = std::min(e, b + size);
    if (!own.compare_exchange_weak(r, PackRange(to, e), std::memory_order_relaxed)) continue;
    if (!run(b, to)) return;
    r = own.load(std::memory_order_relaxed);
  }
  // Then from the back of the others' ranges: half of what is left there at a time.
  for (int k = 1; k < n_threads_; ++k) {
    std::atomic<uint64_t>& other = ranges_[static_cast<size_t>((t + k) % n_threads_)].be;
    for (uint64_t r = other.load(std::memory_order_relaxed);;) {
      const int64_t b = RangeBegin(r), e = RangeEnd(r);
      if (b >= e) break;
      const int64_t size = std::max(grain, (e - b + 1) / 2);
      const int64_t from = std::max(b, e - size);
      if (!other.compare_exchange_weak(r, PackRange(b, from), std::memory_order_relaxed)) continue;
      if (!run(from, e)) return;
      r = other.load(std::memory_order_relaxed);
    }
  }
}

void ThreadPool::WorkerLoop(int t) {
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
    RunChunks(*job_, t, job_grain_, &err);
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

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    fn(0, n);
    return;
  }
  constexpr int64_t kMaxN = int64_t{1} << 30;  // ranges are packed as two 32-bit halves
  if (n > kMaxN) {
    for (int64_t b = 0; b < n; b += kMaxN) {
      const int64_t e = std::min(n, b + kMaxN);
      ParallelFor(
          e - b, [&](int64_t cb, int64_t ce) { fn(b + cb, b + ce); }, grain);
    }
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mu_);
  job_ = &fn;
  job_grain_ =
      grain > 0 ? grain : std::max<int64_t>(1, n / (int64_t{n_threads_} * kMinChunksPerThread));
  for (int t = 0; t < n_threads_; ++t)
    ranges_[static_cast<size_t>(t)].be.store(
        PackRange(n * t / n_threads_, n * (t + 1) / n_threads_), std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();  // no system call when every worker is still spinning
  std::exception_ptr err;
  RunChunks(fn, 0, job_grain_, &err);
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
