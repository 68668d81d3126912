// WebP stills via libwebp (RGB, or RGBA when the file has alpha, as Pillow opens them).
#include <cstring>
#include <string>

#include <webp/decode.h>

#include "io/image_decoders.h"
#include "plm/error.h"

namespace plm {

namespace {

uint32_t ReadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// The EXIF chunk of an extended (VP8X) file: walk the RIFF chunk list, bounds-checked.
std::vector<uint8_t> FindExifChunk(std::span<const uint8_t> bytes) {
  size_t pos = 12;
  while (pos + 8 <= bytes.size()) {
    const uint32_t size = ReadLe32(bytes.data() + pos + 4);
    const size_t body = pos + 8;
    if (size > bytes.size() - body) break;
    if (std::memcmp(bytes.data() + pos, "EXIF", 4) == 0) {
      return {bytes.data() + body, bytes.data() + body + size};
    }
    pos = body + size + (size & 1);
  }
  return {};
}

}  // namespace

RawImage DecodeWebp(std::span<const uint8_t> bytes, const std::string& name,
                    const DecodeLimits& limits, bool header_only) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &features);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) {
    throw Error(ErrorCode::kCorrupt, name + ": bad WebP: truncated header");
  }
  if (status != VP8_STATUS_OK) {
    throw Error(ErrorCode::kCorrupt, name + ": bad WebP: unreadable header (status " +
                                         std::to_string(static_cast<int>(status)) + ")");
  }
  if (features.has_animation) {
    throw Error(ErrorCode::kUnsupported, name + ": animated WebP is not supported");
  }
  CheckImageSize(features.width, features.height, limits, name);
  RawImage out;
  out.width = features.width;
  out.height = features.height;
  out.mode = features.has_alpha ? PixelMode::kRGBA : PixelMode::kRGB;
  out.exif = FindExifChunk(bytes);
  if (header_only) return out;
  const int channels = PixelModeBytes(out.mode);
  const size_t stride = static_cast<size_t>(out.width) * channels;
  out.pixels.resize(stride * out.height);
  const uint8_t* ok = features.has_alpha
                          ? WebPDecodeRGBAInto(bytes.data(), bytes.size(), out.pixels.data(),
                                               out.pixels.size(), static_cast<int>(stride))
                          : WebPDecodeRGBInto(bytes.data(), bytes.size(), out.pixels.data(),
                                              out.pixels.size(), static_cast<int>(stride));
  if (ok == nullptr)
    throw Error(ErrorCode::kCorrupt, name + ": bad WebP: truncated or corrupt data");
  return out;
}

}  // namespace plm
