// Image files -> 8-bit RGB, converted the way the reference's chat path does it.
//
// Formats are sniffed from the content (never the extension) and decoded with the standard
// libraries: libjpeg-turbo, libpng, libwebp, giflib, and FFmpeg's libavcodec for BMP. Conversion
// to RGB follows Pillow's `convert("RGB")` (plm-spec.md §2.1, pinned by the fixtures): alpha is
// dropped (not composited), palette entries are looked up (transparency ignored), gray is
// replicated, 16-bit gray is clipped to 255 (Pillow's I;16 -> RGB), 16-bit colour keeps the high
// byte, CMYK uses Adobe polarity and Pillow's cmyk2rgb. EXIF orientation (JPEG APP1, PNG eXIf,
// WebP EXIF) is applied first, like `ImageOps.exif_transpose`.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "io/image.h"
#include "io/media_limits.h"

namespace plm {

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kGif, kBmp };
const char* ImageFormatName(ImageFormat format);
// Identifies the format from the first bytes; kUnknown when none matches.
ImageFormat SniffImageFormat(std::span<const uint8_t> bytes);

enum class AlphaHandling {
  // Pillow's convert("RGB"): the stored colour of transparent pixels is kept. This is what the
  // reference does on the chat path and, per the fixtures, also for PIL images handed to the
  // transformers 5.x processor.
  kDrop,
  // Composite over opaque white (Pillow alpha_composite), as transformers 4.x's convert_to_rgb
  // does for non-RGB PIL images (plm-spec.md §2.1). Not what the fixtures use.
  kCompositeOverWhite,
};

struct RgbOptions {
  // ImageOps.exif_transpose; the chat path applies it, a PIL image passed straight to the
  // processor does not (fixture keys `.rgb.sub` vs `.sub`).
  bool apply_exif_orientation = true;
  AlphaHandling alpha = AlphaHandling::kDrop;
};

// What the header says, read without decoding pixels (for token counting before pixel work).
struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;        // as stored
  int height = 0;       // as stored
  int orientation = 1;  // EXIF orientation 1..8 (1 when absent or unreadable)
  std::string mode;     // Pillow's mode name for the stored pixels: "RGB", "RGBA", "L", "P", ...
  // Size after the EXIF transpose (orientations 5..8 swap the sides).
  int oriented_width() const { return orientation >= 5 ? height : width; }
  int oriented_height() const { return orientation >= 5 ? width : height; }
};

// All functions throw plm::Error naming `name` / `path`: kCorrupt (truncated or malformed),
// kUnsupported (unknown format, animated WebP), kLimit (pixels, file size, JPEG scans),
// kNotFound / kIo (file access), kInvalidArgument (empty input).
ImageInfo ProbeImage(std::span<const uint8_t> bytes, const std::string& name,
                     const DecodeLimits& limits = {});
ImageInfo ProbeImageFile(const std::string& path, const DecodeLimits& limits = {});

Image DecodeImage(std::span<const uint8_t> bytes, const std::string& name,
                  const DecodeLimits& limits = {}, const RgbOptions& options = {});
Image LoadImageFile(const std::string& path, const DecodeLimits& limits = {},
                    const RgbOptions& options = {});

}  // namespace plm
