// Test images made on the fly with the encoder libraries (libjpeg, libpng, libwebp, giflib,
// libavcodec's BMP encoder), so the tests need no binary files.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace plm::test {

using Bytes = std::vector<uint8_t>;

// A smooth deterministic RGB pattern (compresses well, survives lossy codecs).
std::vector<uint8_t> Gradient(int w, int h, int channels);

struct JpegSpec {
  JpegSpec(int w, int h, int comps, std::vector<uint8_t> px, int q = 95)
      : width(w), height(h), components(comps), pixels(std::move(px)), quality(q) {}
  int width = 0, height = 0;
  int components = 3;  // 1 gray, 3 RGB, 4 CMYK (stored as given, Adobe marker written)
  std::vector<uint8_t> pixels;
  int quality = 95;
  bool progressive = false;
  int exif_orientation = 0;  // > 0: write an Exif APP1 segment with this orientation
};
Bytes EncodeJpeg(const JpegSpec& spec);

// A TIFF/EXIF block ("Exif\0\0" + TIFF) holding only IFD0 Orientation.
Bytes MakeExifOrientation(int orientation, bool with_header);

struct PngSpec {
  PngSpec(int w, int h, int type, int depth, std::vector<uint8_t> px, std::vector<uint8_t> pal = {},
          std::vector<uint8_t> alpha = {})
      : width(w),
        height(h),
        color_type(type),
        bit_depth(depth),
        pixels(std::move(px)),
        palette(std::move(pal)),
        trns(std::move(alpha)) {}
  int width = 0, height = 0;
  int color_type = 2;  // PNG_COLOR_TYPE_*
  int bit_depth = 8;
  std::vector<uint8_t> pixels;   // packed rows as libpng expects (16-bit big-endian)
  std::vector<uint8_t> palette;  // RGB triples for palette images
  std::vector<uint8_t> trns;     // palette alpha
  bool interlace = false;
  int exif_orientation = 0;  // > 0: write an eXIf chunk
};
Bytes EncodePng(const PngSpec& spec);

// A PNG signature + IHDR (with a valid CRC) claiming width x height, and nothing else.
Bytes PngHeaderOnly(uint32_t width, uint32_t height);

Bytes EncodeWebp(int w, int h, const std::vector<uint8_t>& pixels, bool alpha, bool lossless);

struct GifSpec {
  int screen_w = 0, screen_h = 0;
  std::vector<uint8_t> palette;  // RGB triples, 2^k entries
  int transparent_index = -1;
  struct Frame {
    int left = 0, top = 0, w = 0, h = 0;
    std::vector<uint8_t> indices;
  };
  std::vector<Frame> frames;
};
Bytes EncodeGif(const GifSpec& spec);

// BMP via libavcodec; `pal8` uses `palette` (RGB) + indices, else 24-bit RGB pixels.
Bytes EncodeBmp(int w, int h, const std::vector<uint8_t>& pixels, bool pal8,
                const std::vector<uint8_t>& palette = {});

std::string WriteTemp(const std::string& name, const Bytes& bytes);

}  // namespace plm::test
