#include "image_test_files.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
}

#include "support/test_support.h"

namespace plm::test {

std::vector<uint8_t> Gradient(int w, int h, int channels) {
  std::vector<uint8_t> p(static_cast<size_t>(w) * h * channels);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        const int v =
            (x * 255 / std::max(1, w - 1) * (c + 1) + y * 255 / std::max(1, h - 1)) / (c + 2);
        p[(static_cast<size_t>(y) * w + x) * channels + c] = static_cast<uint8_t>(v);
      }
    }
  }
  return p;
}

Bytes MakeExifOrientation(int orientation, bool with_header) {
  // Little-endian TIFF: header (IFD0 at 8), one entry: Orientation (0x0112), SHORT, count 1.
  const std::array<uint8_t, 26> tiff = {'I',
                                        'I',
                                        42,
                                        0,
                                        8,
                                        0,
                                        0,
                                        0,
                                        1,
                                        0,
                                        0x12,
                                        0x01,
                                        3,
                                        0,
                                        1,
                                        0,
                                        0,
                                        0,
                                        static_cast<uint8_t>(orientation),
                                        0,
                                        0,
                                        0,
                                        0,
                                        0,
                                        0,
                                        0};
  Bytes b;
  b.reserve(32);
  if (with_header) {
    for (const char c : {'E', 'x', 'i', 'f', '\0', '\0'}) b.push_back(static_cast<uint8_t>(c));
  }
  for (const uint8_t v : tiff) b.push_back(v);
  return b;
}

Bytes EncodeJpeg(const JpegSpec& s) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &out, &size);
  cinfo.image_width = s.width;
  cinfo.image_height = s.height;
  cinfo.input_components = s.components;
  cinfo.in_color_space = s.components == 1 ? JCS_GRAYSCALE : s.components == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, s.quality, TRUE);
  if (s.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (s.exif_orientation > 0) {
    const Bytes exif = MakeExifOrientation(s.exif_orientation, true);
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, exif.data(), static_cast<unsigned>(exif.size()));
  }
  const size_t row = static_cast<size_t>(s.width) * s.components;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW r = const_cast<uint8_t*>(s.pixels.data()) + row * cinfo.next_scanline;
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes b(out, out + size);
  free(out);
  return b;
}

namespace {

void PngWrite(png_structp png, png_bytep data, png_size_t n) {
  auto* b = static_cast<Bytes*>(png_get_io_ptr(png));
  b->insert(b->end(), data, data + n);
}
void PngFlush(png_structp) {}

uint32_t Crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

void PutBe32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

}  // namespace

Bytes EncodePng(const PngSpec& s) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("png encode failed");
  }
  png_set_write_fn(png, &out, PngWrite, PngFlush);
  png_set_IHDR(png, info, s.width, s.height, s.bit_depth, s.color_type,
               s.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_color> pal;
  if (!s.palette.empty()) {
    for (size_t i = 0; i + 2 < s.palette.size(); i += 3) {
      pal.push_back({s.palette[i], s.palette[i + 1], s.palette[i + 2]});
    }
    png_set_PLTE(png, info, pal.data(), static_cast<int>(pal.size()));
  }
  if (!s.trns.empty()) {
    png_set_tRNS(png, info, s.trns.data(), static_cast<int>(s.trns.size()), nullptr);
  }
  Bytes exif;
  if (s.exif_orientation > 0) {
    exif = MakeExifOrientation(s.exif_orientation, false);
    png_set_eXIf_1(png, info, static_cast<png_uint_32>(exif.size()), exif.data());
  }
  png_write_info(png, info);
  int channels = 1;
  switch (s.color_type) {
    case PNG_COLOR_TYPE_RGB:
      channels = 3;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      channels = 4;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      channels = 2;
      break;
    default:
      channels = 1;
  }
  const size_t row = (static_cast<size_t>(s.width) * channels * s.bit_depth + 7) / 8;
  std::vector<png_bytep> rows(s.height);
  for (int y = 0; y < s.height; ++y) {
    rows[y] = const_cast<uint8_t*>(s.pixels.data()) + row * y;
  }
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

Bytes PngHeaderOnly(uint32_t width, uint32_t height) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes chunk = {'I', 'H', 'D', 'R'};
  PutBe32(chunk, width);
  PutBe32(chunk, height);
  chunk.insert(chunk.end(), {8, 2, 0, 0, 0});
  PutBe32(b, 13);
  b.insert(b.end(), chunk.begin(), chunk.end());
  PutBe32(b, Crc32(chunk.data(), chunk.size()));
  return b;
}

Bytes EncodeWebp(int w, int h, const std::vector<uint8_t>& px, bool alpha, bool lossless) {
  uint8_t* out = nullptr;
  size_t n = 0;
  const int stride = w * (alpha ? 4 : 3);
  if (lossless) {
    n = alpha ? WebPEncodeLosslessRGBA(px.data(), w, h, stride, &out)
              : WebPEncodeLosslessRGB(px.data(), w, h, stride, &out);
  } else {
    n = alpha ? WebPEncodeRGBA(px.data(), w, h, stride, 90, &out)
              : WebPEncodeRGB(px.data(), w, h, stride, 90, &out);
  }
  Bytes b(out, out + n);
  WebPFree(out);
  return b;
}

namespace {
int GifWrite(GifFileType* gif, const GifByteType* data, int n) {
  auto* b = static_cast<Bytes*>(gif->UserData);
  b->insert(b->end(), data, data + n);
  return n;
}
}  // namespace

Bytes EncodeGif(const GifSpec& s) {
  Bytes out;
  int err = 0;
  GifFileType* gif = EGifOpen(&out, GifWrite, &err);
  const int colors = static_cast<int>(s.palette.size() / 3);
  std::vector<GifColorType> c(colors);
  for (int i = 0; i < colors; ++i) {
    c[i] = {s.palette[3 * i], s.palette[3 * i + 1], s.palette[3 * i + 2]};
  }
  ColorMapObject* map = GifMakeMapObject(colors, c.data());
  EGifSetGifVersion(gif, true);
  EGifPutScreenDesc(gif, s.screen_w, s.screen_h, 8, 0, map);
  for (const auto& f : s.frames) {
    GifByteType gce[4] = {static_cast<GifByteType>(s.transparent_index >= 0 ? 1 : 0), 10, 0,
                          static_cast<GifByteType>(std::max(0, s.transparent_index))};
    EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, gce);
    EGifPutImageDesc(gif, f.left, f.top, f.w, f.h, false, nullptr);
    for (int y = 0; y < f.h; ++y) {
      EGifPutLine(gif, const_cast<GifPixelType*>(f.indices.data()) + static_cast<size_t>(y) * f.w,
                  f.w);
    }
  }
  EGifCloseFile(gif, &err);
  GifFreeMapObject(map);
  return out;
}

Bytes EncodeBmp(int w, int h, const std::vector<uint8_t>& px, bool pal8,
                const std::vector<uint8_t>& palette) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_BMP);
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  ctx->width = w;
  ctx->height = h;
  ctx->pix_fmt = pal8 ? AV_PIX_FMT_PAL8 : AV_PIX_FMT_BGR24;
  ctx->time_base = {1, 25};
  if (avcodec_open2(ctx, codec, nullptr) < 0) throw std::runtime_error("bmp encoder");
  AVFrame* f = av_frame_alloc();
  f->width = w;
  f->height = h;
  f->format = ctx->pix_fmt;
  av_frame_get_buffer(f, 0);
  for (int y = 0; y < h; ++y) {
    uint8_t* d = f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0];
    for (int x = 0; x < w; ++x) {
      if (pal8) {
        d[x] = px[static_cast<size_t>(y) * w + x];
      } else {
        const uint8_t* s = &px[(static_cast<size_t>(y) * w + x) * 3];
        d[3 * x] = s[2];
        d[3 * x + 1] = s[1];
        d[3 * x + 2] = s[0];
      }
    }
  }
  if (pal8) {
    auto* pal = reinterpret_cast<uint32_t*>(f->data[1]);
    for (int i = 0; i < 256; ++i) {
      const size_t k = static_cast<size_t>(i) * 3;
      pal[i] = k + 2 < palette.size()
                   ? (0xFFu << 24) | (palette[k] << 16) | (palette[k + 1] << 8) | palette[k + 2]
                   : 0xFF000000u;
    }
  }
  AVPacket* pkt = av_packet_alloc();
  avcodec_send_frame(ctx, f);
  avcodec_send_frame(ctx, nullptr);
  Bytes out;
  if (avcodec_receive_packet(ctx, pkt) == 0) out.assign(pkt->data, pkt->data + pkt->size);
  av_packet_free(&pkt);
  av_frame_free(&f);
  avcodec_free_context(&ctx);
  return out;
}

std::string WriteTemp(const std::string& name, const Bytes& bytes) {
  static const std::string dir = MakeTempDir();
  const std::string path = dir + "/" + name;
  WriteFile(path, std::string(bytes.begin(), bytes.end()));
  return path;
}

}  // namespace plm::test
