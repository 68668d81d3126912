#include "core/stream_prefetch.h"

#include <atomic>
#include <cstdlib>

#include "core/cpu_features.h"

namespace plm {

namespace {
int64_t DefaultL2AheadBytes() {
  const char* e = std::getenv("PLM_L2_PREFETCH");
  if (e != nullptr && *e != '\0') {
    char* end = nullptr;
    const long long v = std::strtoll(e, &end, 10);
    if (end != e && *end == '\0' && v >= 0 && v <= (1 << 20)) return static_cast<int64_t>(v);
  }
  return Cpu().intel ? int64_t{24} << 10 : int64_t{0};
}

std::atomic<int64_t>& L2Ahead() {
  static std::atomic<int64_t> bytes{DefaultL2AheadBytes()};
  return bytes;
}
}  // namespace

int64_t StreamL2AheadBytes() {
  return L2Ahead().load(std::memory_order_relaxed);
}

void SetStreamL2AheadBytesForTesting(int64_t bytes) {
  L2Ahead().store(bytes, std::memory_order_relaxed);
}

}  // namespace plm
