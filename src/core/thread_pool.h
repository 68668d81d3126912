// A fixed pool of worker threads with a blocking parallel-for, sized to the cores by default.
// Workers and the caller spin briefly (PLM_SPIN_US, default 50 µs) before sleeping on a condition
// variable: a decode step issues ~80 parallel-fors back to back, and waking a sleeping thread
// costs more than the gaps between them; a short bound keeps shared cores usable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace plm {

class ThreadPool {
 public:
  // n_threads <= 0 uses the number of online cores. The calling thread also works, so
  // n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return n_threads_; }

  // Runs fn(begin, end) over [0, n) split into contiguous chunks that the threads claim in
  // order until none is left ("guided": each claim takes 1 / (2 * threads) of what is left,
  // at least n / (threads * kMinChunksPerThread)), and returns when all are done: a thread that
  // is slowed down (a shared core, an interrupt) takes fewer chunks instead of making the others
  // wait at the end. Exceptions thrown by fn are rethrown here (the first one; chunks not yet
  // claimed are then skipped).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  static constexpr int64_t kMinChunksPerThread = 16;

  // The process-wide pool used by kernels; SetGlobalThreads replaces it (not while in use).
  static ThreadPool& Global();
  static void SetGlobalThreads(int n_threads);

 private:
  void WorkerLoop();
  // Claims and runs chunks of the current job until none is left; the first exception in *err.
  void RunChunks(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int64_t grain,
                 std::exception_ptr* err);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  // job_ and job_n_ are written before generation_ is bumped (release) and read after it is seen
  // (acquire); a job's workers are all done (pending_ == 0) before the next one is written.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  alignas(64) std::atomic<int64_t> next_{0};  // the next unclaimed index of the current job
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;  // guarded by mu_
  std::mutex call_mu_;        // one ParallelFor at a time
};

int DefaultThreadCount();

}  // namespace plm
