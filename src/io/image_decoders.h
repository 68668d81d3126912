// Internal: per-format decoders producing pixels in Pillow's storage modes, before the
// conversion to RGB (image_color_convert.h). Not part of the public API.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/media_limits.h"

namespace plm {

// Pillow's modes, as the decoders hand the pixels over.
enum class PixelMode {
  kL,     // 8-bit gray (also 1/2/4-bit gray, expanded like Pillow: x255 / x85 / x17)
  kLA,    // gray + alpha
  kRGB,   // 8-bit colour (16-bit colour keeps the high byte, like Pillow's RGB;16B)
  kRGBA,  // colour + alpha
  kP,     // palette indices + `palette`
  kCMYK,  // Pillow polarity (0 = no ink), i.e. after the Adobe inversion
  kI16,   // 16-bit gray, native-endian uint16 samples
};
const char* PixelModeName(PixelMode mode);
int PixelModeBytes(PixelMode mode);  // bytes per pixel

struct RawImage {
  int width = 0;
  int height = 0;
  PixelMode mode = PixelMode::kRGB;
  std::vector<uint8_t> pixels;  // empty after a header-only decode
  // kP: 256 RGBA entries; entries past the file's palette are gray (i, i, i) like Pillow's.
  std::vector<uint8_t> palette;
  std::vector<uint8_t> exif;  // raw EXIF block ("Exif\0\0" + TIFF, or bare TIFF), may be empty
};

// Each decoder validates the header, enforces `limits` (kLimit) and, unless `header_only`,
// decodes the pixels. Errors name `name`.
RawImage DecodeJpeg(std::span<const uint8_t> bytes, const std::string& name,
                    const DecodeLimits& limits, bool header_only);
RawImage DecodePng(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only);
RawImage DecodeWebp(std::span<const uint8_t> bytes, const std::string& name,
                    const DecodeLimits& limits, bool header_only);
RawImage DecodeGif(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only);
RawImage DecodeBmp(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only);

// Throws kLimit / kCorrupt when a header's size is unusable.
void CheckImageSize(int64_t width, int64_t height, const DecodeLimits& limits,
                    const std::string& name);

// A grayscale palette (i, i, i, 255) for 256 entries; decoders overwrite the file's entries.
std::vector<uint8_t> DefaultPalette();

}  // namespace plm
