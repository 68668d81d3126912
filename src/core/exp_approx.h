// The exp approximation the attention and activation kernels share (Cephes-style expf, ~2 ulp):
// x clamped to [kExpMin, kExpMax]; n = round(x log2 e); r = x - n ln 2 with ln 2 in two parts;
// exp(r) = 1 + r + r^2 P(r), P of degree 5 (Horner from kExpPoly[0]); times 2^n. ExpApprox is the
// scalar form; the vector kernels (AVX-512 in core/attention.cc, AVX2 in core/attention_avx2.cc)
// evaluate the same steps lane by lane.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace plm {

inline constexpr float kExpMin = -87.3f, kExpMax = 88.7f;
inline constexpr float kExpLog2e = 1.44269504088896341f;
inline constexpr float kExpLn2Hi = 0.693359375f, kExpLn2Lo = 2.12194440e-4f;  // r = x - n hi + n lo
inline constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                      4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// Branch-free, so loops over it vectorise.
inline float ExpApprox(float x) {
  x = std::clamp(x, kExpMin, kExpMax);
  const float n = std::nearbyint(x * kExpLog2e);
  float r = x - n * kExpLn2Hi;
  r = r + n * kExpLn2Lo;
  float p = kExpPoly[0];
  for (int i = 1; i < 6; ++i) p = p * r + kExpPoly[i];
  p = p * r * r + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, 4);
  return p * scale;
}

}  // namespace plm
