#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include "io/ffmpeg_log.h"
#include "io/video_reader.h"
#include "plm/error.h"

namespace plm {

namespace {

// Demuxed packets without a decoded frame before we call the stream broken (bounded time).
constexpr int64_t kMaxPacketsWithoutFrame = 20000;
// Decode errors tolerated (damaged packets are skipped, like players do) before giving up.
constexpr int kMaxDecodeErrors = 200;
// Gaps (in frames) shorter than this are decoded through rather than seeked over.
constexpr int64_t kMinSeekGap = 48;

std::string AvError(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

struct MemoryInput {
  std::span<const uint8_t> bytes;
  int64_t pos = 0;
};

int ReadMemory(void* opaque, uint8_t* buf, int size) {
  auto* in = static_cast<MemoryInput*>(opaque);
  const int64_t left = static_cast<int64_t>(in->bytes.size()) - in->pos;
  if (left <= 0) return AVERROR_EOF;
  const int n = static_cast<int>(std::min<int64_t>(left, size));
  std::memcpy(buf, in->bytes.data() + in->pos, static_cast<size_t>(n));
  in->pos += n;
  return n;
}

int64_t SeekMemory(void* opaque, int64_t offset, int whence) {
  auto* in = static_cast<MemoryInput*>(opaque);
  const int64_t size = static_cast<int64_t>(in->bytes.size());
  if (whence & AVSEEK_SIZE) return size;
  int64_t pos;
  switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET:
      pos = offset;
      break;
    case SEEK_CUR:
      pos = in->pos + offset;
      break;
    case SEEK_END:
      pos = size + offset;
      break;
    default:
      return -1;
  }
  if (pos < 0 || pos > size) return -1;
  in->pos = pos;
  return pos;
}

class FfmpegVideo : public VideoFrameSource {
 public:
  FfmpegVideo(std::string name, std::span<const uint8_t> memory, bool from_memory,
              const DecodeLimits& limits)
      : name_(std::move(name)), from_memory_(from_memory), limits_(limits) {
    memory_.bytes = memory;
    pkt_ = av_packet_alloc();
    frame_ = av_frame_alloc();
    last_ = av_frame_alloc();
    if (pkt_ == nullptr || frame_ == nullptr || last_ == nullptr) {
      Cleanup();
      throw Error(ErrorCode::kInternal, name_ + ": out of memory");
    }
    try {
      OpenInput();
      ReadInfo();
    } catch (...) {
      Cleanup();
      throw;
    }
  }

  ~FfmpegVideo() override { Cleanup(); }

  const VideoInfo& info() const override { return info_; }
  const std::string& name() const override { return name_; }
  int64_t frames_decoded() const override { return frames_decoded_; }

  void ReadFrames(std::span<const int64_t> indices,
                  const std::function<void(int64_t, const Image&)>& fn) override {
    if (indices.empty()) return;
    for (size_t i = 1; i < indices.size(); ++i) {
      if (indices[i] < indices[i - 1]) {
        throw Error(ErrorCode::kInvalidArgument, name_ + ": frame indices must be ascending");
      }
    }
    if (used_) {
      CloseInput();
      OpenInput();
      FindStream();
    }
    used_ = true;
    frames_decoded_ = 0;
    OpenDecoder();
    int64_t index = -1;  // index of the last decoded frame
    int64_t last_pts = AV_NOPTS_VALUE;
    bool have_last = false;
    start_pts_ = AV_NOPTS_VALUE;
    size_t next = 0;
    Image rgb;
    while (next < indices.size()) {
      const int64_t target = indices[next];
      if (target < 0 || target >= info_.total_frames) {
        throw Error(ErrorCode::kInvalidArgument,
                    name_ + ": frame " + std::to_string(target) + " is out of range (" +
                        std::to_string(info_.total_frames) + " frames)");
      }
      if (index >= 0 && target - index > kMinSeekGap) MaybeSeek(target, last_pts);
      if (!DecodeNext()) {
        // The container promised more frames than the stream holds: repeat the last one so
        // that the frame (and token) count computed up front still holds.
        if (!have_last) throw Error(ErrorCode::kCorrupt, name_ + ": no decodable video frames");
        ToRgb(last_, &rgb);
        while (next < indices.size()) fn(indices[next++], rgb);
        break;
      }
      const int64_t pts = frame_->best_effort_timestamp;
      if (start_pts_ == AV_NOPTS_VALUE && index < 0) start_pts_ = pts;
      index = FrameIndex(pts, index);
      last_pts = pts;
      av_frame_unref(last_);
      av_frame_ref(last_, frame_);
      have_last = true;
      if (index < target) continue;  // not needed: never converted
      ToRgb(frame_, &rgb);
      while (next < indices.size() && indices[next] <= index) fn(indices[next++], rgb);
    }
    CloseDecoder();
  }

 private:
  void OpenInput() {
    fmt_ = avformat_alloc_context();
    if (fmt_ == nullptr) throw Error(ErrorCode::kInternal, name_ + ": out of memory");
    if (from_memory_) {
      memory_.pos = 0;
      constexpr int kBufferSize = 1 << 16;
      auto* buffer = static_cast<uint8_t*>(av_malloc(kBufferSize));
      avio_ = avio_alloc_context(buffer, kBufferSize, 0, &memory_, ReadMemory, nullptr, SeekMemory);
      if (avio_ == nullptr) {
        av_free(buffer);
        throw Error(ErrorCode::kInternal, name_ + ": out of memory");
      }
      fmt_->pb = avio_;
      fmt_->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    const int r = avformat_open_input(&fmt_, from_memory_ ? "" : name_.c_str(), nullptr, nullptr);
    if (r < 0) {
      fmt_ = nullptr;  // freed by avformat_open_input on failure
      if (r == AVERROR(ENOENT)) throw Error(ErrorCode::kNotFound, name_ + ": no such file");
      throw Error(ErrorCode::kCorrupt, name_ + ": not a readable video (" + AvError(r) +
                                           "): unknown, corrupt or " + "truncated container");
    }
    const int s = avformat_find_stream_info(fmt_, nullptr);
    if (s < 0) {
      throw Error(ErrorCode::kCorrupt, name_ + ": cannot read stream info (" + AvError(s) + ")");
    }
    FindStream();
  }

  void FindStream() {
    const AVCodec* codec = nullptr;
    const int r = av_find_best_stream(fmt_, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r == AVERROR_STREAM_NOT_FOUND) {
      throw Error(ErrorCode::kCorrupt, name_ + ": the file has no video stream");
    }
    if (r == AVERROR_DECODER_NOT_FOUND || (r >= 0 && codec == nullptr)) {
      // Find the stream anyway to name its codec.
      std::string codec_name = "unknown";
      for (unsigned i = 0; i < fmt_->nb_streams; ++i) {
        if (fmt_->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
          codec_name = avcodec_get_name(fmt_->streams[i]->codecpar->codec_id);
          break;
        }
      }
      throw Error(ErrorCode::kUnsupported,
                  name_ + ": video codec " + codec_name + " is not supported by this FFmpeg build");
    }
    if (r < 0) throw Error(ErrorCode::kCorrupt, name_ + ": no usable video stream");
    stream_index_ = r;
    stream_ = fmt_->streams[r];
    codec_ = codec;
  }

  void ReadInfo() {
    const AVCodecParameters* par = stream_->codecpar;
    info_.codec = avcodec_get_name(par->codec_id);
    info_.width = par->width;
    info_.height = par->height;
    if (par->width <= 0 || par->height <= 0) {
      throw Error(ErrorCode::kCorrupt, name_ + ": video stream has no frame size");
    }
    CheckPixels(par->width, par->height);
    const AVRational rate = av_guess_frame_rate(fmt_, stream_, nullptr);
    if (rate.num > 0 && rate.den > 0) info_.fps = av_q2d(rate);
    if (stream_->duration != AV_NOPTS_VALUE && stream_->duration > 0) {
      info_.duration_seconds = static_cast<double>(stream_->duration) * av_q2d(stream_->time_base);
    } else if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0) {
      info_.duration_seconds = static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    }
    if (info_.duration_seconds > limits_.max_video_seconds) {
      throw Error(ErrorCode::kLimit, name_ + ": video of " +
                                         std::to_string(info_.duration_seconds) +
                                         " s exceeds the limit of " +
                                         std::to_string(limits_.max_video_seconds) + " s");
    }
    if (stream_->nb_frames > 0) {
      info_.total_frames = stream_->nb_frames;
    } else {
      info_.total_frames = CountPackets();
      CloseInput();
      OpenInput();
    }
    if (info_.total_frames <= 0) throw Error(ErrorCode::kCorrupt, name_ + ": video has no frames");
    if (info_.duration_seconds <= 0 && info_.fps > 0) {
      info_.duration_seconds = static_cast<double>(info_.total_frames) / info_.fps;
    }
    // Frame counts far past what the duration limit allows are a bomb (or a lie).
    const double max_frames = limits_.max_video_seconds * std::max(info_.fps, 1.0) * 2 + 1000;
    if (static_cast<double>(info_.total_frames) > max_frames) {
      throw Error(ErrorCode::kLimit, name_ + ": " + std::to_string(info_.total_frames) +
                                         " frames exceed the duration limit");
    }
  }

  // One demux pass over the stream's packets (no decoding): the exact frame count for
  // containers that do not store it (webm/mkv, GIF, ...).
  int64_t CountPackets() {
    int64_t count = 0, other = 0;
    const double max_frames = limits_.max_video_seconds * std::max(info_.fps, 1.0) * 2 + 1000;
    while (av_read_frame(fmt_, pkt_) >= 0) {
      if (pkt_->stream_index == stream_index_) {
        ++count;
      } else if (++other > kMaxPacketsWithoutFrame * 100) {
        av_packet_unref(pkt_);
        break;
      }
      av_packet_unref(pkt_);
      if (static_cast<double>(count) > max_frames) {
        throw Error(ErrorCode::kLimit, name_ + ": more than " + std::to_string(count) +
                                           " frames exceed the duration limit");
      }
    }
    return count;
  }

  void OpenDecoder() {
    CloseDecoder();
    ctx_ = avcodec_alloc_context3(codec_);
    if (ctx_ == nullptr) throw Error(ErrorCode::kInternal, name_ + ": out of memory");
    if (avcodec_parameters_to_context(ctx_, stream_->codecpar) < 0) {
      throw Error(ErrorCode::kCorrupt, name_ + ": bad codec parameters");
    }
    ctx_->max_pixels = limits_.max_pixels;
    ctx_->thread_count = 0;  // FFmpeg picks
    ctx_->pkt_timebase = stream_->time_base;
    const int r = avcodec_open2(ctx_, codec_, nullptr);
    if (r < 0) {
      throw Error(ErrorCode::kUnsupported,
                  name_ + ": cannot open the " + info_.codec + " decoder (" + AvError(r) + ")");
    }
    draining_ = false;
    decode_errors_ = 0;
  }

  // Decodes the next frame into frame_; false at the end of the stream.
  bool DecodeNext() {
    int64_t packets = 0;
    for (;;) {
      const int r = avcodec_receive_frame(ctx_, frame_);
      if (r == 0) {
        ++frames_decoded_;
        CheckPixels(frame_->width, frame_->height);
        return true;
      }
      if (r == AVERROR_EOF) return false;
      if (r != AVERROR(EAGAIN)) {
        if (++decode_errors_ > kMaxDecodeErrors) {
          throw Error(ErrorCode::kCorrupt, name_ + ": too many decode errors (" + AvError(r) + ")");
        }
        continue;
      }
      if (draining_) return false;
      const int rr = av_read_frame(fmt_, pkt_);
      if (rr < 0) {
        // End of file (or a truncated one): drain what the decoder holds.
        draining_ = true;
        avcodec_send_packet(ctx_, nullptr);
        continue;
      }
      if (pkt_->stream_index != stream_index_) {
        av_packet_unref(pkt_);
        continue;
      }
      if (++packets > kMaxPacketsWithoutFrame) {
        av_packet_unref(pkt_);
        throw Error(ErrorCode::kCorrupt,
                    name_ + ": " + std::to_string(packets) + " packets without a decodable frame");
      }
      const int s = avcodec_send_packet(ctx_, pkt_);
      av_packet_unref(pkt_);
      if (s < 0 && s != AVERROR(EAGAIN) && ++decode_errors_ > kMaxDecodeErrors) {
        throw Error(ErrorCode::kCorrupt, name_ + ": too many decode errors (" + AvError(s) + ")");
      }
    }
  }

  // Presentation index of a decoded frame: from its timestamp when the rate is known, else by
  // counting.
  int64_t FrameIndex(int64_t pts, int64_t previous) const {
    if (pts == AV_NOPTS_VALUE || start_pts_ == AV_NOPTS_VALUE || !(info_.fps > 0)) {
      return previous + 1;
    }
    const double seconds = static_cast<double>(pts - start_pts_) * av_q2d(stream_->time_base);
    const int64_t idx = std::llround(seconds * info_.fps);
    return std::max(idx, previous + 1);
  }

  // Jumps to the keyframe before `target` unless it is behind the current position.
  void MaybeSeek(int64_t target, int64_t current_pts) {
    if (start_pts_ == AV_NOPTS_VALUE || !(info_.fps > 0) || current_pts == AV_NOPTS_VALUE) return;
    const double tb = av_q2d(stream_->time_base);
    if (!(tb > 0)) return;
    // Half a frame early, so rounding never lands past the target.
    const double seconds = (static_cast<double>(target) - 0.5) / info_.fps;
    const int64_t ts = start_pts_ + static_cast<int64_t>(std::floor(seconds / tb));
    const AVIndexEntry* key =
        avformat_index_get_entry_from_timestamp(stream_, ts, AVSEEK_FLAG_BACKWARD);
    if (key != nullptr && key->timestamp <= current_pts) return;  // decoding on is cheaper
    if (av_seek_frame(fmt_, stream_index_, ts, AVSEEK_FLAG_BACKWARD) < 0) return;
    avcodec_flush_buffers(ctx_);
    draining_ = false;
  }

  void ToRgb(const AVFrame* f, Image* out) {
    sws_ = sws_getCachedContext(sws_, f->width, f->height, static_cast<AVPixelFormat>(f->format),
                                f->width, f->height, AV_PIX_FMT_RGB24,
                                SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                nullptr, nullptr);
    if (sws_ == nullptr) {
      const char* fmt = av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format));
      throw Error(ErrorCode::kUnsupported, name_ + ": cannot convert pixel format " +
                                               std::string(fmt != nullptr ? fmt : "?") + " to RGB");
    }
    // YUV matrix and range as the stream declares them (BT.601 limited when unspecified).
    const int* src_coeffs = sws_getCoefficients(f->colorspace);
    const int src_full = f->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
    sws_setColorspaceDetails(sws_, src_coeffs, src_full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                             1 << 16, 1 << 16);
    out->width = f->width;
    out->height = f->height;
    out->rgb.resize(static_cast<size_t>(f->width) * f->height * 3);
    uint8_t* dst[4] = {out->rgb.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {f->width * 3, 0, 0, 0};
    sws_scale(sws_, f->data, f->linesize, 0, f->height, dst, dst_stride);
  }

  void CheckPixels(int64_t w, int64_t h) const {
    if (w <= 0 || h <= 0) throw Error(ErrorCode::kCorrupt, name_ + ": frame has zero size");
    if (w * h > limits_.max_pixels) {
      throw Error(ErrorCode::kLimit, name_ + ": frames of " + std::to_string(w) + "x" +
                                         std::to_string(h) + " exceed the limit of " +
                                         std::to_string(limits_.max_pixels) + " pixels");
    }
  }

  void CloseDecoder() {
    if (ctx_ != nullptr) avcodec_free_context(&ctx_);
  }

  void CloseInput() {
    CloseDecoder();
    if (fmt_ != nullptr) avformat_close_input(&fmt_);
    if (avio_ != nullptr) {
      av_freep(&avio_->buffer);
      avio_context_free(&avio_);
    }
    stream_ = nullptr;
  }

  void Cleanup() {
    CloseInput();
    if (sws_ != nullptr) sws_freeContext(sws_);
    sws_ = nullptr;
    av_packet_free(&pkt_);
    av_frame_free(&frame_);
    av_frame_free(&last_);
  }

  std::string name_;
  bool from_memory_;
  DecodeLimits limits_;
  MemoryInput memory_;
  VideoInfo info_;
  AVFormatContext* fmt_ = nullptr;
  AVIOContext* avio_ = nullptr;
  AVStream* stream_ = nullptr;
  int stream_index_ = -1;
  const AVCodec* codec_ = nullptr;
  AVCodecContext* ctx_ = nullptr;
  SwsContext* sws_ = nullptr;
  AVPacket* pkt_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVFrame* last_ = nullptr;
  int64_t start_pts_ = AV_NOPTS_VALUE;
  bool draining_ = false;
  bool used_ = false;
  int decode_errors_ = 0;
  int64_t frames_decoded_ = 0;
};

}  // namespace

std::unique_ptr<VideoFrameSource> OpenFfmpegVideo(const std::string& path,
                                                  const DecodeLimits& limits) {
  QuietFfmpegLogs();
  return std::make_unique<FfmpegVideo>(path, std::span<const uint8_t>(), false, limits);
}

std::unique_ptr<VideoFrameSource> OpenFfmpegVideoMemory(std::span<const uint8_t> bytes,
                                                        const std::string& name,
                                                        const DecodeLimits& limits) {
  QuietFfmpegLogs();
  if (bytes.empty()) throw Error(ErrorCode::kInvalidArgument, name + ": empty file");
  return std::make_unique<FfmpegVideo>(name, bytes, true, limits);
}

}  // namespace plm
