#include <sys/mman.h>

#include <cstdint>
#include <new>

#include "plm/huge_page_allocator.h"

namespace plm {

namespace {

constexpr std::align_val_t kSmallAlign{64};

size_t RoundUpToHugePage(size_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

}  // namespace

void* AllocateLarge(size_t bytes) {
  if (bytes < kHugePageBytes) return ::operator new(bytes == 0 ? 1 : bytes, kSmallAlign);
  const size_t len = RoundUpToHugePage(bytes);
  if (len < bytes || len + kHugePageBytes < len) throw std::bad_alloc();
  // Over-map by one huge page and trim both ends so the block starts on a 2 MiB boundary (only
  // whole, aligned 2 MiB ranges can be huge pages).
  void* raw = ::mmap(nullptr, len + kHugePageBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = (base + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
  if (start > base) ::munmap(raw, start - base);
  const size_t tail = base + len + kHugePageBytes - (start + len);
  if (tail > 0) ::munmap(reinterpret_cast<void*>(start + len), tail);
  void* p = reinterpret_cast<void*>(start);
  ::madvise(p, len, MADV_HUGEPAGE);  // advisory: without THP the pages stay 4 KiB
  return p;
}

void FreeLarge(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kHugePageBytes) {
    ::operator delete(p, kSmallAlign);
    return;
  }
  ::munmap(p, RoundUpToHugePage(bytes));
}

}  // namespace plm
