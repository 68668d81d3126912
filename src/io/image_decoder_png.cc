// PNG via libpng, handing pixels over in the mode Pillow would open: L/LA/RGB/RGBA/P/I;16
// (16-bit colour and gray+alpha keep the high byte, 16-bit gray stays 16-bit, sub-byte gray is
// scaled to 8 bits, palette stays indexed, tRNS is ignored like Pillow's convert("RGB")).
#include <csetjmp>
#include <cstring>
#include <string>

#include <png.h>

#include "io/image_decoders.h"
#include "plm/error.h"

namespace plm {

namespace {

struct PngJob {
  std::span<const uint8_t> bytes;
  size_t offset = 0;
  const DecodeLimits* limits;
  bool header_only;
  RawImage out;
  std::vector<png_bytep> rows;
  std::string error;
  bool too_big = false;
};

void OnPngError(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  job->error = message;
  png_longjmp(png, 1);
}

void OnPngWarning(png_structp, png_const_charp) {}

void ReadFromMemory(png_structp png, png_bytep data, png_size_t length) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (job->bytes.size() - job->offset < length) {
    png_error(png, "unexpected end of file (truncated)");
  }
  std::memcpy(data, job->bytes.data() + job->offset, length);
  job->offset += length;
}

bool RunPng(PngJob* job) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, OnPngError, OnPngWarning);
  if (png == nullptr) {
    job->error = "out of memory";
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    job->error = "out of memory";
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, job, ReadFromMemory);
  // Libpng's own limits stay above ours so that our check (with its message) runs first.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_set_chunk_malloc_max(png, 64u << 20);
  png_read_info(png, info);
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  RawImage& out = job->out;
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  png_bytep exif = nullptr;
  png_uint_32 exif_len = 0;
  if (png_get_eXIf_1(png, info, &exif_len, &exif) != 0 && exif != nullptr) {
    out.exif.assign(exif, exif + exif_len);
  }
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
      out.mode = bit_depth == 16 ? PixelMode::kI16 : PixelMode::kL;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      out.mode = PixelMode::kLA;
      break;
    case PNG_COLOR_TYPE_PALETTE:
      out.mode = PixelMode::kP;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      out.mode = PixelMode::kRGBA;
      break;
    default:
      out.mode = PixelMode::kRGB;
      break;
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    out.palette = DefaultPalette();
    png_colorp colors = nullptr;
    int num = 0;
    if (png_get_PLTE(png, info, &colors, &num) != 0) {
      for (int i = 0; i < num && i < 256; ++i) {
        out.palette[i * 4 + 0] = colors[i].red;
        out.palette[i * 4 + 1] = colors[i].green;
        out.palette[i * 4 + 2] = colors[i].blue;
      }
    }
    png_bytep alpha = nullptr;
    int num_alpha = 0;
    if (png_get_tRNS(png, info, &alpha, &num_alpha, nullptr) != 0 && alpha != nullptr) {
      for (int i = 0; i < num_alpha && i < 256; ++i) out.palette[i * 4 + 3] = alpha[i];
    }
  }
  if (job->header_only || width == 0 || height == 0 ||
      static_cast<int64_t>(width) * height > job->limits->max_pixels) {
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
  }
  if (bit_depth < 8) {
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
      png_set_packing(png);  // indices, one per byte
    } else {
      png_set_expand_gray_1_2_4_to_8(png);
    }
  }
  if (bit_depth == 16) {
    if (out.mode == PixelMode::kI16) {
      png_set_swap(png);  // big-endian file samples -> native little-endian uint16
    } else {
      png_set_strip_16(png);  // the high byte, like Pillow's ;16B unpackers
    }
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  if (row_bytes != static_cast<size_t>(width) * PixelModeBytes(out.mode)) {
    job->error = "unexpected row size";
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  out.pixels.resize(row_bytes * height);
  job->rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) job->rows[y] = out.pixels.data() + row_bytes * y;
  png_read_image(png, job->rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

RawImage DecodePng(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only) {
  // The size check comes straight from IHDR (signature, length, "IHDR", width, height), so a
  // bomb header is refused before libpng reads further chunks.
  if (bytes.size() >= 24 && std::memcmp(bytes.data() + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return (static_cast<uint32_t>(bytes[at]) << 24) |
             (static_cast<uint32_t>(bytes[at + 1]) << 16) |
             (static_cast<uint32_t>(bytes[at + 2]) << 8) | static_cast<uint32_t>(bytes[at + 3]);
    };
    const int64_t w = be32(16), h = be32(20);
    if (w > 0 && h > 0) CheckImageSize(w, h, limits, name);
  }
  PngJob job{bytes, 0, &limits, header_only, {}, {}, {}, false};
  if (!RunPng(&job)) throw Error(ErrorCode::kCorrupt, name + ": bad PNG: " + job.error);
  CheckImageSize(job.out.width, job.out.height, limits, name);
  return std::move(job.out);
}

}  // namespace plm
