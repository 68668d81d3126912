#include "io/image_decode.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "io/image_color_convert.h"
#include "io/image_decoders.h"
#include "io/image_exif.h"
#include "plm/error.h"

namespace plm {

namespace {

bool StartsWith(std::span<const uint8_t> b, const char* magic, size_t n, size_t at = 0) {
  return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
}

// A file shorter than a format's signature but agreeing with its first bytes.
bool LooksLikeTruncatedMagic(std::span<const uint8_t> b) {
  static const char* const kMagics[] = {"\xFF\xD8\xFF", "\x89PNG\r\n\x1A\n", "RIFF", "GIF87a",
                                        "GIF89a"};
  for (const char* m : kMagics) {
    const size_t n = std::strlen(m);
    if (b.size() < n && std::memcmp(b.data(), m, b.size()) == 0) return true;
  }
  // RIFF without room for the WEBP tag.
  return b.size() < 12 && b.size() >= 4 && std::memcmp(b.data(), "RIFF", 4) == 0;
}

RawImage DecodeRaw(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only, ImageFormat* format) {
  if (bytes.empty()) throw Error(ErrorCode::kInvalidArgument, name + ": empty file");
  if (static_cast<int64_t>(bytes.size()) > limits.max_file_bytes) {
    throw Error(ErrorCode::kLimit, name + ": file of " + std::to_string(bytes.size()) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(limits.max_file_bytes) + " bytes");
  }
  *format = SniffImageFormat(bytes);
  if (*format == ImageFormat::kUnknown && LooksLikeTruncatedMagic(bytes)) {
    throw Error(ErrorCode::kCorrupt,
                name + ": truncated image file (only " + std::to_string(bytes.size()) + " bytes)");
  }
  switch (*format) {
    case ImageFormat::kJpeg:
      return DecodeJpeg(bytes, name, limits, header_only);
    case ImageFormat::kPng:
      return DecodePng(bytes, name, limits, header_only);
    case ImageFormat::kWebp:
      return DecodeWebp(bytes, name, limits, header_only);
    case ImageFormat::kGif:
      return DecodeGif(bytes, name, limits, header_only);
    case ImageFormat::kBmp:
      return DecodeBmp(bytes, name, limits, header_only);
    case ImageFormat::kUnknown:
      break;
  }
  throw Error(ErrorCode::kUnsupported,
              name + ": not a supported image (JPEG, PNG, WebP, GIF or BMP expected)");
}

std::vector<uint8_t> ReadImageFile(const std::string& path, const DecodeLimits& limits) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error(ErrorCode::kNotFound, path + ": no such file");
  if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::kInvalidArgument, path + ": is a directory");
  if (st.st_size > limits.max_file_bytes) {
    throw Error(ErrorCode::kLimit, path + ": file of " + std::to_string(st.st_size) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(limits.max_file_bytes) + " bytes");
  }
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (!bytes.empty() && std::fread(bytes.data(), 1, bytes.size(), f.get()) != bytes.size()) {
    throw Error(ErrorCode::kIo, path + ": read error");
  }
  return bytes;
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

ImageFormat SniffImageFormat(std::span<const uint8_t> b) {
  if (StartsWith(b, "\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (StartsWith(b, "\x89PNG\r\n\x1A\n", 8)) return ImageFormat::kPng;
  if (StartsWith(b, "RIFF", 4) && StartsWith(b, "WEBP", 4, 8)) return ImageFormat::kWebp;
  if (StartsWith(b, "GIF87a", 6) || StartsWith(b, "GIF89a", 6)) return ImageFormat::kGif;
  if (StartsWith(b, "BM", 2)) return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

const char* PixelModeName(PixelMode mode) {
  switch (mode) {
    case PixelMode::kL:
      return "L";
    case PixelMode::kLA:
      return "LA";
    case PixelMode::kRGB:
      return "RGB";
    case PixelMode::kRGBA:
      return "RGBA";
    case PixelMode::kP:
      return "P";
    case PixelMode::kCMYK:
      return "CMYK";
    case PixelMode::kI16:
      return "I;16";
  }
  return "?";
}

int PixelModeBytes(PixelMode mode) {
  switch (mode) {
    case PixelMode::kL:
      return 1;
    case PixelMode::kLA:
      return 2;
    case PixelMode::kRGB:
      return 3;
    case PixelMode::kRGBA:
      return 4;
    case PixelMode::kP:
      return 1;
    case PixelMode::kCMYK:
      return 4;
    case PixelMode::kI16:
      return 2;
  }
  return 1;
}

void CheckImageSize(int64_t width, int64_t height, const DecodeLimits& limits,
                    const std::string& name) {
  if (width <= 0 || height <= 0) {
    throw Error(ErrorCode::kCorrupt, name + ": image has zero size (" + std::to_string(width) +
                                         "x" + std::to_string(height) + ")");
  }
  if (width > limits.max_pixels || height > limits.max_pixels ||
      width * height > limits.max_pixels) {
    throw Error(ErrorCode::kLimit, name + ": image of " + std::to_string(width) + "x" +
                                       std::to_string(height) + " pixels exceeds the limit of " +
                                       std::to_string(limits.max_pixels) +
                                       " pixels (possible decompression bomb)");
  }
}

std::vector<uint8_t> DefaultPalette() {
  std::vector<uint8_t> p(256 * 4);
  for (int i = 0; i < 256; ++i) {
    p[i * 4] = p[i * 4 + 1] = p[i * 4 + 2] = static_cast<uint8_t>(i);
    p[i * 4 + 3] = 255;
  }
  return p;
}

ImageInfo ProbeImage(std::span<const uint8_t> bytes, const std::string& name,
                     const DecodeLimits& limits) {
  ImageInfo info;
  const RawImage raw = DecodeRaw(bytes, name, limits, /*header_only=*/true, &info.format);
  info.width = raw.width;
  info.height = raw.height;
  info.mode = PixelModeName(raw.mode);
  info.orientation = ReadExifOrientation(raw.exif);
  return info;
}

ImageInfo ProbeImageFile(const std::string& path, const DecodeLimits& limits) {
  const std::vector<uint8_t> bytes = ReadImageFile(path, limits);
  return ProbeImage(bytes, path, limits);
}

Image DecodeImage(std::span<const uint8_t> bytes, const std::string& name,
                  const DecodeLimits& limits, const RgbOptions& options) {
  ImageFormat format;
  const RawImage raw = DecodeRaw(bytes, name, limits, /*header_only=*/false, &format);
  Image rgb = ConvertToRgb(raw, options.alpha);
  if (options.apply_exif_orientation) {
    rgb = ApplyExifOrientation(std::move(rgb), ReadExifOrientation(raw.exif));
  }
  return rgb;
}

Image LoadImageFile(const std::string& path, const DecodeLimits& limits,
                    const RgbOptions& options) {
  const std::vector<uint8_t> bytes = ReadImageFile(path, limits);
  return DecodeImage(bytes, path, limits, options);
}

}  // namespace plm
