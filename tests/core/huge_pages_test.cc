// Large buffers for decode (plm/huge_page_allocator.h) and weight files read into them
// (MappedFile with copy_to_huge_pages): alignment, sizes on and off the 2 MiB boundary, contents
// identical to the mapped file, small files still mapped, errors naming the file.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "plm/error.h"
#include "plm/huge_page_allocator.h"
#include "support/test_support.h"

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

TEST(MappedFile, CopyToHugePagesHoldsTheFileBytes) {
  const std::string dir = test::MakeTempDir();
  for (size_t size : {kHugePageBytes, 2 * kHugePageBytes + 4097}) {
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
    const std::string path = dir + "/w" + std::to_string(size) + ".bin";
    test::WriteFile(path, bytes);
    const MappedFile mapped(path), copied(path, true);
    EXPECT_FALSE(mapped.copied());
    ASSERT_TRUE(copied.copied()) << size;
    ASSERT_EQ(copied.size(), size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(copied.data()) % kHugePageBytes, 0u);
    EXPECT_EQ(std::memcmp(copied.data(), mapped.data(), size), 0) << size;
  }
  // Under 2 MiB there is no huge page to gain: mapped as before.
  test::WriteFile(dir + "/small.bin", std::string(1000, 'x'));
  const MappedFile small(dir + "/small.bin", true);
  EXPECT_FALSE(small.copied());
  ASSERT_EQ(small.size(), 1000u);
  EXPECT_EQ(small.data()[999], 'x');
}

TEST(MappedFile, CopyOfAMissingFileNamesIt) {
  const std::string path = test::MakeTempDir() + "/missing.safetensors";
  try {
    MappedFile f(path, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace plm
