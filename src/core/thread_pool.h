// A fixed pool of worker threads with a blocking parallel-for, sized to the cores by default.
#pragma once

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

  // Runs fn(begin, end) over [0, n) split into contiguous chunks, one per thread at most,
  // and returns when all are done. Exceptions thrown by fn are rethrown here (the first one).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // The process-wide pool used by kernels; SetGlobalThreads replaces it (not while in use).
  static ThreadPool& Global();
  static void SetGlobalThreads(int n_threads);

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex call_mu_;  // one ParallelFor at a time
};

int DefaultThreadCount();

}  // namespace plm
