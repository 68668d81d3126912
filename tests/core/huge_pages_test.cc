// Large buffers for decode (plm/huge_page_allocator.h): alignment, sizes on and off the 2 MiB
// boundary, small blocks from operator new, a vector growing in them.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "plm/huge_page_allocator.h"

namespace plm {
namespace {

TEST(HugePageAllocator, LargeBlocksAre2MiBAlignedAndWritable) {
  for (size_t bytes : {kHugePageBytes, 3 * kHugePageBytes + 5, size_t{7} << 20}) {
    auto* p = static_cast<uint8_t*>(AllocateLarge(bytes));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePageBytes, 0u) << bytes;
    std::memset(p, 0xab, bytes);  // every byte is ours (ASan / a fault would say otherwise)
    EXPECT_EQ(p[0], 0xab);
    EXPECT_EQ(p[bytes - 1], 0xab);
    FreeLarge(p, bytes);
  }
}

TEST(HugePageAllocator, SmallBlocksComeFromOperatorNew) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, kHugePageBytes - 1}) {
    auto* p = static_cast<uint8_t*>(AllocateLarge(bytes));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << bytes;
    if (bytes > 0) std::memset(p, 1, bytes);
    FreeLarge(p, bytes);
  }
  FreeLarge(nullptr, 0);
  FreeLarge(nullptr, kHugePageBytes);
}

TEST(HugePageAllocator, VectorGrowsAndKeepsItsValues) {
  std::vector<uint16_t, HugePageAllocator<uint16_t>> v;
  for (int i = 0; i < 3'000'000; ++i) v.push_back(static_cast<uint16_t>(i * 7));
  for (int i = 0; i < 3'000'000; i += 4099) ASSERT_EQ(v[i], static_cast<uint16_t>(i * 7));
  v.resize(10);
  v.shrink_to_fit();
  EXPECT_EQ(v[9], 63);
}

}  // namespace
}  // namespace plm
