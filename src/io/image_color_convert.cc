#include "io/image_color_convert.h"

#include <algorithm>
#include <cstring>

namespace plm {

namespace {

// Pillow's MULDIV255: a*b/255 rounded, in integers.
inline int MulDiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// Pillow's cmyk2rgb.
inline void CmykToRgb(const uint8_t* in, uint8_t* out) {
  const int nk = 255 - in[3];
  for (int c = 0; c < 3; ++c)
    out[c] = static_cast<uint8_t>(std::clamp(nk - MulDiv255(in[c], nk), 0, 255));
}

// One pixel as Pillow's RGBA conversion of the mode sees it.
inline void ToRgba(const RawImage& raw, size_t i, uint8_t* o) {
  const uint8_t* p = raw.pixels.data() + i * PixelModeBytes(raw.mode);
  switch (raw.mode) {
    case PixelMode::kL:
      o[0] = o[1] = o[2] = p[0];
      o[3] = 255;
      break;
    case PixelMode::kLA:
      o[0] = o[1] = o[2] = p[0];
      o[3] = p[1];
      break;
    case PixelMode::kRGB:
      o[0] = p[0];
      o[1] = p[1];
      o[2] = p[2];
      o[3] = 255;
      break;
    case PixelMode::kRGBA:
      std::memcpy(o, p, 4);
      break;
    case PixelMode::kP:
      std::memcpy(o, &raw.palette[static_cast<size_t>(p[0]) * 4], 4);
      break;
    case PixelMode::kCMYK:
      CmykToRgb(p, o);
      o[3] = 255;
      break;
    case PixelMode::kI16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      o[0] = o[1] = o[2] = static_cast<uint8_t>(std::min<int>(v, 255));  // Pillow clips I;16
      o[3] = 255;
      break;
    }
  }
}

// Pillow's alpha_composite of `src` over an opaque white pixel (7 fraction bits).
inline void CompositeOverWhite(const uint8_t* src, uint8_t* out) {
  constexpr uint32_t kPrecisionBits = 7;
  auto shift_div255 = [](uint32_t a) { return ((a >> 8) + a) >> 8; };
  const uint32_t a = src[3];
  if (a == 0) {
    out[0] = out[1] = out[2] = 255;
    return;
  }
  const uint32_t blend = 255 * (255 - a);
  const uint32_t outa255 = a * 255 + blend;
  const uint32_t coef1 = a * 255 * 255 * (1u << kPrecisionBits) / outa255;
  const uint32_t coef2 = 255 * (1u << kPrecisionBits) - coef1;
  for (int c = 0; c < 3; ++c) {
    const uint32_t t = src[c] * coef1 + 255 * coef2;
    out[c] = static_cast<uint8_t>(shift_div255(t + (0x80u << kPrecisionBits)) >> kPrecisionBits);
  }
}

}  // namespace

Image ConvertToRgb(const RawImage& raw, AlphaHandling alpha) {
  Image out;
  out.width = raw.width;
  out.height = raw.height;
  const size_t n = static_cast<size_t>(raw.width) * raw.height;
  if (raw.mode == PixelMode::kRGB) {
    out.rgb = raw.pixels;
    return out;
  }
  out.rgb.resize(n * 3);
  uint8_t px[4];
  for (size_t i = 0; i < n; ++i) {
    ToRgba(raw, i, px);
    if (alpha == AlphaHandling::kCompositeOverWhite) {
      CompositeOverWhite(px, &out.rgb[i * 3]);
    } else {
      std::memcpy(&out.rgb[i * 3], px, 3);
    }
  }
  return out;
}

}  // namespace plm
