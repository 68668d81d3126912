// ThreadPool: every index is covered exactly once for any n and thread count, a held-up thread
// takes less of the work, exceptions reach the caller and leave the pool usable, back-to-back
// calls (decode's pattern, served by spinning workers) and calls from several threads at once
// work, and pools start and stop cleanly whether their workers are spinning or asleep.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace plm {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 4, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {1, 2, 3, 7, 8, 9, 100, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.ParallelFor(n, [&](int64_t b, int64_t e) {
        EXPECT_LT(b, e);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)], 1) << n << " " << i;
    }
    pool.ParallelFor(0, [](int64_t, int64_t) { ADD_FAILURE() << "called for n = 0"; });
  }
}

// Chunks are claimed, not assigned: while one thread is held up, the others take the rest of
// the work. The worker's first chunk waits until the caller has done more than half (at most 2 s:
// with one fixed half per thread the caller can never get there, and the test fails).
TEST(ThreadPool, AHeldUpThreadTakesLessWork) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int round = 0; round < 3; ++round) {
    std::atomic<int64_t> by_caller{0}, chunks{0};
    std::atomic<bool> held{false};
    pool.ParallelFor(1000, [&](int64_t b, int64_t e) {
      chunks++;
      if (std::this_thread::get_id() == caller) {
        by_caller += e - b;
      } else if (!held.exchange(true)) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (by_caller.load() <= 500 && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    EXPECT_GT(by_caller.load(), 500) << round;
    EXPECT_GT(chunks.load(), 2) << round;
  }
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolStaysUsable) {
  ThreadPool pool(3);
  for (int thrower : {0, 1, 2}) {  // the caller's chunk and the workers' chunks
    EXPECT_THROW(pool.ParallelFor(3,
                                  [&](int64_t b, int64_t) {
                                    if (b == thrower) throw std::runtime_error("boom");
                                  }),
                 std::runtime_error);
    std::atomic<int64_t> sum{0};
    pool.ParallelFor(100, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    EXPECT_EQ(sum, 4950);
  }
}

TEST(ThreadPool, BackToBackCallsAndPausesBetweenThem) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int call = 0; call < 20000; ++call) {
    pool.ParallelFor(4, [&](int64_t b, int64_t e) { total += e - b; });
    // Now and then a pause longer than the spin budget: the workers fall asleep and must wake.
    if (call % 5000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(total, 4 * 20000);
}

TEST(ThreadPool, CallsFromSeveralThreadsAreSerialised) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        pool.ParallelFor(10, [&](int64_t b, int64_t e) { total += e - b; });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(total, 4 * 500 * 10);
}

TEST(ThreadPool, StartsAndStopsWhileSpinningOrAsleep) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(3);
    if (i % 2 == 0) pool.ParallelFor(3, [](int64_t, int64_t) {});  // workers spinning at exit
    if (i % 10 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // asleep
  }
  SUCCEED();
}

}  // namespace
}  // namespace plm
