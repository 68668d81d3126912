#include "video_test_files.h"

#include <cmath>
#include <memory>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

// libx265 keeps a few small encoder allocations until process exit; they are not ours.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libx265.so\n";
}

namespace plm::test {

namespace {

constexpr int kLevels = 12;
constexpr int kStep = 18;
constexpr int kBase = 20;

void FillFrame(std::vector<uint8_t>& rgb, int w, int h, int index) {
  const int left = kBase + kStep * ((index / kLevels) % kLevels);
  const int right = kBase + kStep * (index % kLevels);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t v = static_cast<uint8_t>(x < w / 2 ? left : right);
      uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = p[1] = p[2] = v;
    }
  }
}

int Level(const Image& f, int x0, int x1) {
  double s = 0;
  int n = 0;
  // The centre of each half, away from the edge and from chroma bleeding.
  for (int y = f.height / 4; y < f.height * 3 / 4; ++y) {
    for (int x = x0; x < x1; ++x) {
      s += f.rgb[(static_cast<size_t>(y) * f.width + x) * 3 + 1];
      ++n;
    }
  }
  return static_cast<int>(std::lround((s / n - kBase) / kStep));
}

}  // namespace

int64_t IdentifyFrame(const Image& f) {
  if (f.width < 8 || f.height < 4) return -1;
  const int hi = Level(f, f.width / 8, f.width * 3 / 8);
  const int lo = Level(f, f.width * 5 / 8, f.width * 7 / 8);
  if (hi < 0 || lo < 0 || hi >= kLevels || lo >= kLevels) return -1;
  return hi * kLevels + lo;
}

bool WriteTestVideo(const std::string& path, const VideoSpec& s, std::string* why) {
  av_log_set_level(AV_LOG_ERROR);
  const AVOutputFormat* ofmt = av_guess_format(s.container.c_str(), nullptr, nullptr);
  const AVCodec* codec = avcodec_find_encoder_by_name(s.encoder.c_str());
  if (ofmt == nullptr || codec == nullptr) {
    *why = "no muxer " + s.container + " or encoder " + s.encoder + " in this FFmpeg";
    return false;
  }
  AVFormatContext* fmt = nullptr;
  avformat_alloc_output_context2(&fmt, ofmt, nullptr, path.c_str());
  AVStream* st = avformat_new_stream(fmt, nullptr);
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  ctx->width = s.width;
  ctx->height = s.height;
  ctx->time_base = {1, s.fps};
  ctx->framerate = {s.fps, 1};
  ctx->gop_size = s.gop;
  ctx->max_b_frames = s.b_frames;
  ctx->pix_fmt = codec->pix_fmts != nullptr ? codec->pix_fmts[0] : AV_PIX_FMT_YUV420P;
  if (s.encoder == "gif") ctx->pix_fmt = AV_PIX_FMT_GRAY8;
  if (s.encoder == "libx264") av_opt_set(ctx->priv_data, "preset", "ultrafast", 0);
  if (s.encoder == "libx265") {
    av_opt_set(ctx->priv_data, "preset", "ultrafast", 0);
    av_opt_set(ctx->priv_data, "x265-params", "log-level=none", 0);
  }
  if (s.encoder == "libvpx" || s.encoder == "libvpx-vp9") {
    av_opt_set(ctx->priv_data, "deadline", "realtime", 0);
    av_opt_set_int(ctx->priv_data, "cpu-used", 8, 0);
    ctx->bit_rate = 400000;
  }
  if (s.encoder == "libaom-av1") {
    av_opt_set_int(ctx->priv_data, "cpu-used", 8, 0);
    av_opt_set(ctx->priv_data, "usage", "realtime", 0);
  }
  if (s.encoder == "mpeg4" || s.encoder == "mjpeg") ctx->qmin = ctx->qmax = 2;
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  bool ok = avcodec_open2(ctx, codec, nullptr) >= 0;
  if (!ok) *why = "cannot open encoder " + s.encoder;
  ok = ok && avcodec_parameters_from_context(st->codecpar, ctx) >= 0;
  st->time_base = ctx->time_base;
  ok = ok && avio_open(&fmt->pb, path.c_str(), AVIO_FLAG_WRITE) >= 0;
  ok = ok && avformat_write_header(fmt, nullptr) >= 0;
  if (ok) {
    SwsContext* sws = sws_getContext(s.width, s.height, AV_PIX_FMT_RGB24, s.width, s.height,
                                     ctx->pix_fmt, SWS_POINT, nullptr, nullptr, nullptr);
    AVFrame* frame = av_frame_alloc();
    frame->width = s.width;
    frame->height = s.height;
    frame->format = ctx->pix_fmt;
    av_frame_get_buffer(frame, 0);
    AVPacket* pkt = av_packet_alloc();
    std::vector<uint8_t> rgb(static_cast<size_t>(s.width) * s.height * 3);
    auto drain = [&] {
      while (avcodec_receive_packet(ctx, pkt) == 0) {
        av_packet_rescale_ts(pkt, ctx->time_base, st->time_base);
        pkt->stream_index = st->index;
        av_interleaved_write_frame(fmt, pkt);
      }
    };
    for (int i = 0; i < s.frames; ++i) {
      FillFrame(rgb, s.width, s.height, i);
      av_frame_make_writable(frame);
      const uint8_t* src[1] = {rgb.data()};
      const int src_stride[1] = {s.width * 3};
      sws_scale(sws, src, src_stride, 0, s.height, frame->data, frame->linesize);
      frame->pts = i;
      avcodec_send_frame(ctx, frame);
      drain();
    }
    avcodec_send_frame(ctx, nullptr);
    drain();
    av_write_trailer(fmt);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    sws_freeContext(sws);
  } else if (why->empty()) {
    *why = "cannot write " + s.container;
  }
  avcodec_free_context(&ctx);
  if (fmt->pb != nullptr) avio_closep(&fmt->pb);
  avformat_free_context(fmt);
  return ok;
}

}  // namespace plm::test
