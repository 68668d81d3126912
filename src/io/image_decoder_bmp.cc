// BMP via FFmpeg's libavcodec BMP decoder (a standard Debian library; there is no libbmp).
#include <cstring>
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include "io/ffmpeg_log.h"
#include "io/image_decoders.h"
#include "plm/error.h"

namespace plm {

namespace {

int32_t ReadLe32(const uint8_t* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                              (static_cast<uint32_t>(p[2]) << 16) |
                              (static_cast<uint32_t>(p[3]) << 24));
}

struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};

void CopyConverted(const AVFrame* f, RawImage& out, const std::string& name) {
  const int w = f->width, h = f->height;
  const auto fmt = static_cast<AVPixelFormat>(f->format);
  auto rows = [&](int channels, auto&& per_row) {
    out.pixels.resize(static_cast<size_t>(w) * h * channels);
    for (int y = 0; y < h; ++y) {
      per_row(f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0],
              out.pixels.data() + static_cast<size_t>(y) * w * channels);
    }
  };
  switch (fmt) {
    case AV_PIX_FMT_PAL8: {
      out.mode = PixelMode::kP;
      out.palette = DefaultPalette();
      const auto* pal = reinterpret_cast<const uint32_t*>(f->data[1]);
      for (int i = 0; i < 256; ++i) {
        out.palette[i * 4 + 0] = static_cast<uint8_t>(pal[i] >> 16);
        out.palette[i * 4 + 1] = static_cast<uint8_t>(pal[i] >> 8);
        out.palette[i * 4 + 2] = static_cast<uint8_t>(pal[i]);
      }
      rows(1, [&](const uint8_t* s, uint8_t* d) { std::memcpy(d, s, w); });
      return;
    }
    case AV_PIX_FMT_GRAY8:
      out.mode = PixelMode::kL;
      rows(1, [&](const uint8_t* s, uint8_t* d) { std::memcpy(d, s, w); });
      return;
    case AV_PIX_FMT_BGR24:
      out.mode = PixelMode::kRGB;
      rows(3, [&](const uint8_t* s, uint8_t* d) {
        for (int x = 0; x < w; ++x) {
          d[3 * x] = s[3 * x + 2];
          d[3 * x + 1] = s[3 * x + 1];
          d[3 * x + 2] = s[3 * x];
        }
      });
      return;
    case AV_PIX_FMT_BGRA:
    case AV_PIX_FMT_BGR0:
      // Pillow reads plain 32-bit BMPs as RGB ("BGRX"); the 4th byte is not used.
      out.mode = PixelMode::kRGB;
      rows(3, [&](const uint8_t* s, uint8_t* d) {
        for (int x = 0; x < w; ++x) {
          d[3 * x] = s[4 * x + 2];
          d[3 * x + 1] = s[4 * x + 1];
          d[3 * x + 2] = s[4 * x];
        }
      });
      return;
    default:
      break;
  }
  // Anything else (1-bit, 16-bit 555/565, ...) goes through libswscale.
  SwsContext* sws =
      sws_getContext(w, h, fmt, w, h, AV_PIX_FMT_RGB24, SWS_POINT, nullptr, nullptr, nullptr);
  if (sws == nullptr) {
    throw Error(
        ErrorCode::kUnsupported,
        name + ": BMP pixel format " + std::string(av_get_pix_fmt_name(fmt)) + " is not supported");
  }
  out.mode = PixelMode::kRGB;
  out.pixels.resize(static_cast<size_t>(w) * h * 3);
  uint8_t* dst[4] = {out.pixels.data(), nullptr, nullptr, nullptr};
  int dst_stride[4] = {w * 3, 0, 0, 0};
  sws_scale(sws, f->data, f->linesize, 0, h, dst, dst_stride);
  sws_freeContext(sws);
}

}  // namespace

RawImage DecodeBmp(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only) {
  // BITMAPFILEHEADER (14 bytes) + at least the BITMAPINFOHEADER width/height fields.
  if (bytes.size() < 26) throw Error(ErrorCode::kCorrupt, name + ": bad BMP: truncated header");
  const uint32_t info_size = static_cast<uint32_t>(ReadLe32(bytes.data() + 14));
  int64_t width, height;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
    width = bytes[18] | (bytes[19] << 8);
    height = bytes[20] | (bytes[21] << 8);
  } else {
    width = ReadLe32(bytes.data() + 18);
    height = ReadLe32(bytes.data() + 22);
    if (height < 0) height = -height;  // top-down rows
  }
  CheckImageSize(width, height, limits, name);
  RawImage out;
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  out.mode = PixelMode::kRGB;
  if (header_only) return out;

  QuietFfmpegLogs();
  const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_BMP);
  if (codec == nullptr) throw Error(ErrorCode::kUnsupported, name + ": no BMP decoder in FFmpeg");
  std::unique_ptr<AVCodecContext, CodecContextDeleter> ctx(avcodec_alloc_context3(codec));
  std::unique_ptr<AVPacket, PacketDeleter> pkt(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  if (!ctx || !pkt || !frame) throw Error(ErrorCode::kInternal, name + ": out of memory");
  ctx->max_pixels = limits.max_pixels;
  if (avcodec_open2(ctx.get(), codec, nullptr) < 0) {
    throw Error(ErrorCode::kInternal, name + ": cannot open the BMP decoder");
  }
  // The decoder may read up to AV_INPUT_BUFFER_PADDING_SIZE bytes past the data.
  if (av_new_packet(pkt.get(), static_cast<int>(bytes.size())) < 0) {
    throw Error(ErrorCode::kLimit, name + ": BMP file too large");
  }
  std::memcpy(pkt->data, bytes.data(), bytes.size());
  if (avcodec_send_packet(ctx.get(), pkt.get()) < 0 ||
      avcodec_receive_frame(ctx.get(), frame.get()) < 0) {
    throw Error(ErrorCode::kCorrupt, name + ": bad BMP: truncated or corrupt data");
  }
  if (frame->width != out.width || frame->height != out.height) {
    throw Error(ErrorCode::kCorrupt, name + ": bad BMP: inconsistent size");
  }
  CopyConverted(frame.get(), out, name);
  return out;
}

}  // namespace plm
