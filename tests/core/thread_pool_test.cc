// ThreadPool: every index is covered exactly once for any n and thread count, each thread streams
// its own share from the front and takes others' from the back, a held-up thread takes less of
// the work, exceptions reach the caller and leave the pool usable, back-to-back calls (decode's
// pattern, served by spinning workers) and calls from several threads at once work, and pools start
// and stop cleanly whether their workers are spinning or asleep.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
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

// Ranges too long for the packed 32-bit claims are split, still covering every index once.
TEST(ThreadPool, CoversRangesBeyond32Bits) {
  ThreadPool pool(2);
  const int64_t n = (int64_t{1} << 32) + 3;
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  pool.ParallelFor(n, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    chunks.emplace_back(b, e);
  });
  std::sort(chunks.begin(), chunks.end());
  int64_t next = 0;
  for (const auto& [b, e] : chunks) {
    EXPECT_EQ(b, next);
    EXPECT_LT(b, e);
    next = e;
  }
  EXPECT_EQ(next, n);
}

// Two threads: the caller owns [0, n/2), the worker [n/2, n). Whatever the timing, a thread's
// chunks in its own share follow each other from the share's start (one sequential stream), come
// before any it takes from the other share, and those shrink the other share from its end.
TEST(ThreadPool, OwnShareFromTheFrontTheOtherFromTheBack) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int64_t n : {2, 10, 1000, 4097}) {
    for (int round = 0; round < 20; ++round) {
      std::mutex mu;
      std::map<std::thread::id, std::vector<std::pair<int64_t, int64_t>>> by_thread;
      pool.ParallelFor(n, [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(mu);
        by_thread[std::this_thread::get_id()].emplace_back(b, e);
      });
      int64_t covered = 0;
      for (const auto& [id, chunks] : by_thread) {
        const bool is_caller = id == caller;
        const int64_t own_b = is_caller ? 0 : n / 2, own_e = is_caller ? n / 2 : n;
        const int64_t other_e = is_caller ? n : n / 2;
        int64_t own_next = own_b, stolen_next = other_e;
        bool stealing = false;
        for (const auto& [b, e] : chunks) {
          covered += e - b;
          if (b >= own_b && e <= own_e) {
            EXPECT_FALSE(stealing) << n << ": own chunk after a stolen one";
            EXPECT_EQ(b, own_next) << n << ": own share not claimed in order";
            own_next = e;
          } else {
            stealing = true;
            EXPECT_EQ(e, stolen_next) << n << ": not taken from the back of the other share";
            stolen_next = b;
          }
        }
      }
      EXPECT_EQ(covered, n);
    }
  }
}

// `grain` bounds how small the claims get: 1 hands out single items at the end of every share
// (the decode GEMVs' heavy blocks), the default keeps chunks of about n / (threads * 16) items.
TEST(ThreadPool, GrainSetsTheSmallestClaim) {
  ThreadPool pool(2);
  const int64_t n = 1024;
  for (int64_t grain : {int64_t{0}, int64_t{1}, int64_t{64}}) {
    for (int round = 0; round < 20; ++round) {
      std::mutex mu;
      std::vector<std::pair<int64_t, int64_t>> chunks;
      pool.ParallelFor(
          n,
          [&](int64_t b, int64_t e) {
            std::lock_guard<std::mutex> lock(mu);
            chunks.emplace_back(b, e);
          },
          grain);
      int64_t covered = 0, smallest = n;
      for (const auto& [b, e] : chunks) {
        covered += e - b;
        smallest = std::min(smallest, e - b);
      }
      EXPECT_EQ(covered, n);
      const int64_t want = grain > 0 ? grain : n / (2 * ThreadPool::kMinChunksPerThread);
      // Claims hold `want` items except where less than that is left of a share (at most one
      // such remainder per share and thief).
      int64_t short_chunks = 0;
      for (const auto& [b, e] : chunks) short_chunks += e - b < want;
      EXPECT_LE(short_chunks, 4) << "grain " << grain;
      EXPECT_LE(static_cast<int64_t>(chunks.size()), n / want + 4) << "grain " << grain;
      if (grain == 1) {
        EXPECT_EQ(smallest, 1);
      }
    }
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
