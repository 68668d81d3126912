#include "bandwidth_probe.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "core/memory_read.h"
#include "plm/error.h"
#include "plm/huge_page_allocator.h"

namespace plm::cli {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

using Buffer = std::vector<float, HugePageAllocator<float>>;

// One read of the whole buffer by `threads` threads, in bytes per second.
double ReadPass(const Buffer& buf, int threads, bool prefetch) {
  const size_t n = buf.size();
  std::vector<float> sums(static_cast<size_t>(threads), 0.0f);
  const double t0 = Now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      const size_t b = n * t / threads, e = n * (t + 1) / threads;
      sums[t] = ReadSum(buf.data() + b, e - b, prefetch);
    });
  for (auto& th : ts) th.join();
  const double dt = Now() - t0;
  __asm__ volatile("" : : "r"(sums.data()) : "memory");  // the sums are the point: keep them
  return static_cast<double>(n * sizeof(float)) / dt;
}

// All n bytes through read(2) or write(2), resuming after short transfers and EINTR; false at
// end of file or on an error.
template <typename Char, typename Syscall>
bool TransferAll(Syscall sys, int fd, Char* c, size_t n) {
  while (n > 0) {
    const ssize_t r = sys(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool ReadAll(int fd, void* p, size_t n) {
  return TransferAll(::read, fd, static_cast<char*>(p), n);
}

bool WriteAll(int fd, const void* p, size_t n) {
  return TransferAll(::write, fd, static_cast<const char*>(p), n);
}

// The child: fills its buffer once, then answers each request (a pass count) with the best pass.
[[noreturn]] void ServeMeasurements(int in, int out, int threads) {
  Buffer buf((size_t{1} << 30) / sizeof(float), 1.0f);
  int passes = 0;
  while (ReadAll(in, &passes, sizeof(passes))) {
    double best = 0;
    for (int p = 0; p < passes; ++p) best = std::max(best, ReadPass(buf, threads, p % 2 == 1));
    if (!WriteAll(out, &best, sizeof(best))) break;
  }
  ::_exit(0);
}

}  // namespace

BandwidthProbe::BandwidthProbe(int threads) {
  ::signal(SIGPIPE, SIG_IGN);  // a child that died is reported by Measure, not by a signal
  int down[2], up[2];
  if (::pipe(down) != 0) throw Error(ErrorCode::kIo, "pipe failed");
  if (::pipe(up) != 0) {
    ::close(down[0]);
    ::close(down[1]);
    throw Error(ErrorCode::kIo, "pipe failed");
  }
  pid_ = ::fork();
  if (pid_ < 0) {
    for (int fd : {down[0], down[1], up[0], up[1]}) ::close(fd);
    throw Error(ErrorCode::kIo, "fork failed");
  }
  if (pid_ == 0) {
    ::close(down[1]);
    ::close(up[0]);
    try {
      ServeMeasurements(down[0], up[1], std::max(1, threads));
    } catch (...) {
      ::_exit(1);
    }
  }
  ::close(down[0]);
  ::close(up[1]);
  to_child_ = down[1];
  from_child_ = up[0];
}

BandwidthProbe::~BandwidthProbe() {
  ::close(to_child_);
  ::close(from_child_);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

double BandwidthProbe::Measure(int passes) {
  double bw = 0;
  if (!WriteAll(to_child_, &passes, sizeof(passes)) || !ReadAll(from_child_, &bw, sizeof(bw)) ||
      !(bw > 0))
    throw Error(ErrorCode::kInternal, "the read-bandwidth measurement failed");
  return bw;
}

}  // namespace plm::cli
