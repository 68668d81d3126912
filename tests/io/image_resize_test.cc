// The exact uint8 antialiased bicubic resize: AVX2 and threaded paths equal the scalar reference
// byte for byte, and the filter follows plm-spec.md §2.5.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "io/resize_bicubic_aa.h"

namespace plm {
namespace {

std::vector<uint8_t> Noise(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(static_cast<size_t>(w) * h * c);
  // Hard edges (0/255 runs) exercise the clamping, noise the rest.
  for (auto& x : v) x = (rng() % 4 == 0) ? ((rng() & 1) ? 255 : 0) : static_cast<uint8_t>(rng());
  return v;
}

TEST(ImageResize, FilterMatchesSpecRule) {
  // Upscale: support 2, weights sum to 2^precision (up to rounding), first tap at 0.
  const AAFilter up = ComputeAAFilter(10, 37);
  EXPECT_EQ(up.out_size, 37);
  EXPECT_EQ(up.start[0], 0);
  for (int i = 0; i < up.out_size; ++i) {
    int sum = 0;
    for (int k = 0; k < up.count[i]; ++k) sum += up.weights[i * up.taps + k];
    EXPECT_NEAR(sum, 1 << up.precision, up.count[i]) << i;
    EXPECT_LE(up.start[i] + up.count[i], 10);
  }
  // Downscale by 4: support widened to 8 -> up to 17 taps.
  const AAFilter down = ComputeAAFilter(400, 100);
  int max_count = 0;
  for (int c : down.count) max_count = std::max(max_count, c);
  EXPECT_GE(max_count, 16);
  EXPECT_LE(max_count, down.taps);
  // The precision is the first at which twice the largest weight reaches 2^15.
  for (const AAFilter* f : {&up, &down}) {
    int16_t wmax = 0;
    for (int16_t w : f->weights) wmax = std::max(wmax, w);
    EXPECT_GE(2 * wmax + 1, 1 << 15);
    EXPECT_LT(wmax, 1 << 15);
  }
}

TEST(ImageResize, SimdAndThreadsEqualScalar) {
  const int sizes[][4] = {{37, 23, 112, 112},   {640, 427, 448, 448}, {640, 427, 1344, 896},
                          {1200, 64, 126, 126}, {23, 31, 252, 378},   {500, 500, 500, 448},
                          {451, 300, 451, 123}, {3, 2, 7, 5},         {1, 1, 9, 4},
                          {9, 4, 1, 1},         {97, 61, 84, 84}};
  uint32_t seed = 1;
  for (const auto& s : sizes) {
    for (int channels : {3, 1, 4}) {
      const auto src = Noise(s[0], s[1], channels, seed++);
      std::vector<uint8_t> ref(static_cast<size_t>(s[2]) * s[3] * channels);
      std::vector<uint8_t> fast(ref.size()), threaded(ref.size());
      ResizeBicubicAA(src.data(), s[0], s[1], channels, ref.data(), s[2], s[3], 1,
                      ResizeImpl::kScalar);
      ResizeBicubicAA(src.data(), s[0], s[1], channels, fast.data(), s[2], s[3], 1);
      ResizeBicubicAA(src.data(), s[0], s[1], channels, threaded.data(), s[2], s[3], 7);
      ASSERT_EQ(fast, ref) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3] << " c"
                           << channels;
      ASSERT_EQ(threaded, ref) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3];
    }
  }
}

TEST(ImageResize, SameSizeIsACopyAndConstantStaysConstant) {
  const auto src = Noise(33, 17, 3, 9);
  std::vector<uint8_t> out(src.size());
  ResizeBicubicAA(src.data(), 33, 17, 3, out.data(), 33, 17);
  EXPECT_EQ(out, src);
  const std::vector<uint8_t> flat(50 * 40 * 3, 77);
  std::vector<uint8_t> big(130 * 90 * 3), small(7 * 5 * 3);
  ResizeBicubicAA(flat.data(), 50, 40, 3, big.data(), 130, 90);
  ResizeBicubicAA(flat.data(), 50, 40, 3, small.data(), 7, 5);
  for (uint8_t v : big) ASSERT_EQ(v, 77);
  for (uint8_t v : small) ASSERT_EQ(v, 77);
}

TEST(ImageResize, BadArguments) {
  uint8_t px[3] = {0, 0, 0};
  EXPECT_ANY_THROW(ResizeBicubicAA(px, 0, 1, 3, px, 1, 1));
  EXPECT_ANY_THROW(ResizeBicubicAA(px, 1, 1, 5, px, 1, 1));
  EXPECT_ANY_THROW(ComputeAAFilter(5, 0));
}

}  // namespace
}  // namespace plm
