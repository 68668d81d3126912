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

  // Runs fn(begin, end) over [0, n) in contiguous chunks and returns when all are done. Each
  // thread starts on its own 1 / threads of the range and claims it from the front, a quarter
  // of what is left at a time (consecutive chunks: one sequential stream through memory); a
  // thread that is done takes half of what is left of another's range, from the back. So a
  // thread slowed down (a shared core, an interrupt) does less instead of making the others wait,
  // and streaming kernels keep long runs. Chunks hold at least `grain` items where there are
  // that many; grain 0 means n / (threads * kMinChunksPerThread), so cheap items are not claimed
  // one by one. Heavy items (a decode GEMV's 64-row weight blocks, ~2-8 us each) pass 1: the
  // threads then finish a job within one item of each other. Exceptions thrown by fn are
  // rethrown here (the first one; chunks not yet claimed are then skipped).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 0);
  static constexpr int64_t kMinChunksPerThread = 16;

  // The process-wide pool used by kernels; SetGlobalThreads replaces it (not while in use).
  static ThreadPool& Global();
  static void SetGlobalThreads(int n_threads);

 private:
  void WorkerLoop(int t);
  // Thread t claims and runs chunks of the current job until none is left; the first exception
  // in *err.
  void RunChunks(const std::function<void(int64_t, int64_t)>& fn, int t, int64_t grain,
                 std::exception_ptr* err);
  // A thread's unclaimed [begin, end), packed into one word so both ends change atomically.
  static uint64_t PackRange(int64_t b, int64_t e) {
    return static_cast<uint64_t>(b) | static_cast<uint64_t>(e) << 32;
  }
  static int64_t RangeBegin(uint64_t r) { return static_cast<int64_t>(r & 0xffffffffu); }
  static int64_t RangeEnd(uint64_t r) { return static_cast<int64_t>(r >> 32); }
  struct Range {
    alignas(64) std::atomic<uint64_t> be{0};
  };

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  // job_, job_grain_ and ranges_ are written before generation_ is bumped (release) and read after
  // it is seen (acquire); a job's workers are all done (pending_ == 0) before the next one is
  // written.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_grain_ = 1;
  std::vector<Range> ranges_;  // per thread (0: the caller), written before generation_ is bumped
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;  // guarded by mu_
  std::mutex call_mu_;        // one ParallelFor at a time
};

int DefaultThreadCount();

}  // namespace plm
