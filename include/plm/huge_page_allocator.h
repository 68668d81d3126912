// Memory for the large buffers that decode reads on every token (weights copied from the
// checkpoint, the KV cache). Blocks of 2 MiB or more are mapped 2 MiB-aligned and marked for
// transparent huge pages (madvise), so streaming them takes ~500x fewer TLB entries than 4 KiB
// pages: ~8 % faster decode measured for 1B q4 (docs/PERFORMANCE.md, session 8).
// Smaller blocks come from operator new (64-byte aligned). Where the kernel gives no huge pages
// (THP "never"), the blocks are plain pages: same behaviour, no gain.
#pragma once

#include <cstddef>

namespace plm {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Never null (throws std::bad_alloc); free with FreeLarge and the same byte count.
void* AllocateLarge(size_t bytes);
void FreeLarge(void* p, size_t bytes) noexcept;

// std::vector<T, HugePageAllocator<T>>: a vector whose large buffers use AllocateLarge.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(AllocateLarge(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { FreeLarge(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace plm
