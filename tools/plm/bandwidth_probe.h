// The machine's read bandwidth, measured by a child process that keeps its 1 GiB buffer (in huge
// pages, like the weights and the KV cache) for the whole benchmark: the buffer counts in neither
// this process's peak RSS nor the time of each measurement, so `plm bench` can measure between
// short stretches of decoding, close in time to what it relates the bandwidth to.
#pragma once

#include <sys/types.h>

namespace plm::cli {

class BandwidthProbe {
 public:
  // Starts the child (fork before threads or large mappings exist, so it inherits little).
  explicit BandwidthProbe(int threads);
  ~BandwidthProbe();  // the child exits when its pipe closes
  BandwidthProbe(const BandwidthProbe&) = delete;
  BandwidthProbe& operator=(const BandwidthProbe&) = delete;

  // Bytes per second: the best of `passes` reads of the whole buffer by `threads` threads
  // (alternately without and with software prefetch).
  // Throws plm::Error(kInternal) when the child fails.
  double Measure(int passes);

 private:
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
};

}  // namespace plm::cli
