// FFmpeg video reading on videos generated with libavcodec encoders: every container/codec pair
// the installed FFmpeg can write, frame-accurate selection, seeking, bounded decoding, the other
// sources (.npy, frame folders) and bad input.
#include <gtest/gtest.h>
#include <png.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include "image_test_files.h"
#include "io/video_processor.h"
#include "io/video_reader.h"
#include "io/video_source.h"
#include "plm/error.h"
#include "support/test_support.h"
#include "video_test_files.h"

namespace plm {
namespace {

struct Case {
  const char* file;
  const char* container;
  const char* encoder;
};

const Case kCases[] = {
    {"h264.mp4", "mp4", "libx264"},     {"h265.mp4", "mp4", "libx265"},
    {"vp8.webm", "webm", "libvpx"},     {"vp9.webm", "webm", "libvpx-vp9"},
    {"av1.webm", "webm", "libaom-av1"}, {"h264.mkv", "matroska", "libx264"},
    {"mpeg4.avi", "avi", "mpeg4"},      {"mjpeg.mov", "mov", "mjpeg"},
    {"anim.gif", "gif", "gif"},
};

std::string Dir() {
  static const std::string d = test::MakeTempDir();
  return d;
}

// Writes the case's video once; empty when the FFmpeg build cannot encode it.
std::string MakeVideo(const Case& c, int frames = 24, int gop = 12) {
  const std::string path = Dir() + "/" + std::to_string(frames) + "_" + c.file;
  if (test::PathExists(path)) return path;
  test::VideoSpec spec;
  spec.container = c.container;
  spec.encoder = c.encoder;
  spec.frames = frames;
  spec.gop = gop;
  std::string why;
  if (!test::WriteTestVideo(path, spec, &why)) {
    std::printf("  skip %s: %s\n", c.file, why.c_str());
    return "";
  }
  return path;
}

std::vector<int64_t> ReadIdentities(VideoFrameSource& v, const std::vector<int64_t>& indices) {
  std::vector<int64_t> out;
  v.ReadFrames(indices, [&](int64_t, const Image& f) { out.push_back(test::IdentifyFrame(f)); });
  return out;
}

TEST(VideoReader, EveryContainerAndCodec) {
  int tested = 0;
  for (const Case& c : kCases) {
    const std::string path = MakeVideo(c);
    if (path.empty()) continue;
    auto v = OpenVideo(path);
    const VideoInfo& info = v->info();
    std::printf("  %-10s codec %-6s %dx%d frames %lld fps %.2f duration %.2f s\n", c.file,
                info.codec.c_str(), info.width, info.height,
                static_cast<long long>(info.total_frames), info.fps, info.duration_seconds);
    EXPECT_EQ(info.total_frames, 24) << c.file;
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 48);
    std::vector<int64_t> all;
    for (int64_t i = 0; i < 24; ++i) all.push_back(i);
    EXPECT_EQ(ReadIdentities(*v, all), all) << c.file;
    const std::vector<int64_t> some = {0, 3, 6, 9, 12, 15, 18, 21};
    EXPECT_EQ(ReadIdentities(*v, some), some) << c.file << " (second read reopens)";
    const std::vector<int64_t> last = {23};
    EXPECT_EQ(ReadIdentities(*v, last), last) << c.file;
    ++tested;
  }
  EXPECT_GE(tested, 4) << "too few codecs available in this FFmpeg";
}

TEST(VideoReader, LongVideoSeeksInsteadOfDecodingEverything) {
  const Case c{"long.mp4", "mp4", "libx264"};
  const std::string path = MakeVideo(c, 1500, 50);
  if (path.empty()) GTEST_SKIP() << "no libx264";
  auto v = OpenVideo(path);
  ASSERT_EQ(v->info().total_frames, 1500);
  const std::vector<int64_t> idx = SampleFrameIndices(1500, v->info().fps, {8, {}});
  const auto t0 = std::chrono::steady_clock::now();
  const auto got = ReadIdentities(*v, idx);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < idx.size(); ++i) EXPECT_EQ(got[i], idx[i] % 144) << idx[i];
  std::printf("  8 of 1500 frames: %lld frames decoded, %.3f s\n",
              static_cast<long long>(v->frames_decoded()), s);
  EXPECT_LT(v->frames_decoded(), 8 * 60) << "the reader should seek over long gaps";
}

TEST(VideoReader, BFramesKeepPresentationOrder) {
  test::VideoSpec spec;
  spec.container = "mp4";
  spec.encoder = "libx264";
  spec.frames = 300;
  spec.gop = 30;
  spec.b_frames = 3;
  const std::string path = Dir() + "/bframes.mp4";
  std::string why;
  if (!test::WriteTestVideo(path, spec, &why)) GTEST_SKIP() << why;
  auto v = OpenVideo(path);
  ASSERT_EQ(v->info().total_frames, 300);
  std::vector<int64_t> all(300);
  for (int i = 0; i < 300; ++i) all[i] = i;
  const auto got = ReadIdentities(*v, all);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(got[i], i % 144) << "frame " << i;
  // Sparse picks cross keyframes by seeking.
  const std::vector<int64_t> picks = {0, 1, 97, 150, 151, 263, 299};
  const auto sparse = ReadIdentities(*v, picks);
  for (size_t i = 0; i < picks.size(); ++i) EXPECT_EQ(sparse[i], picks[i] % 144) << picks[i];
}

TEST(VideoReader, ProcessorOnAnMp4) {
  const std::string path = MakeVideo({"h264.mp4", "mp4", "libx264"});
  if (path.empty()) GTEST_SKIP() << "no libx264";
  VideoProcessorConfig c;
  c.size_height = c.size_width = 112;
  const VideoProcessor p(c);
  auto v = OpenVideo(path);
  VideoOptions o;
  o.sampling.num_frames = 8;
  EXPECT_EQ(p.CountTokens(v->info(), o), 8 * 16);
  const ProcessedVideo out = p.Preprocess(*v, o);
  EXPECT_EQ(out.num_frames, 8);
  EXPECT_EQ(out.pixel_values.size(), size_t(8 * 3 * 112 * 112));
  o.sampling = {{}, 2.0};  // 24 frames at 24 fps, 2 fps -> 2 frames
  EXPECT_EQ(p.Preprocess(*v, o).frame_indices, (std::vector<int64_t>{0, 12}));
}

TEST(VideoReader, FromMemory) {
  const std::string path = MakeVideo({"vp9.webm", "webm", "libvpx-vp9"});
  if (path.empty()) GTEST_SKIP() << "no libvpx-vp9";
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  auto v = OpenFfmpegVideoMemory(bytes, "upload.webm");
  EXPECT_EQ(v->info().total_frames, 24);
  EXPECT_EQ(ReadIdentities(*v, {5, 17}), (std::vector<int64_t>{5, 17}));
  auto sniffed = OpenVideoMemory(bytes, "upload2.webm");
  EXPECT_EQ(ReadIdentities(*sniffed, {23}), (std::vector<int64_t>{23}));
  EXPECT_THROW(OpenVideoMemory({}, "nothing"), Error);
}

TEST(VideoReader, FrameFolderAndNpy) {
  // A folder of PNG frames.
  const std::string dir = test::MakeTempDir();
  for (int i = 0; i < 5; ++i) {
    test::PngSpec s{4, 2, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(8, uint8_t(i * 10))};
    char name[32];
    std::snprintf(name, sizeof(name), "/frame_%03d.png", i);
    test::WriteFile(dir + name, [&] {
      const auto b = test::EncodePng(s);
      return std::string(b.begin(), b.end());
    }());
  }
  auto folder = OpenVideo(dir, {}, 5.0);
  EXPECT_EQ(folder->info().total_frames, 5);
  std::vector<int> seen;
  folder->ReadFrames(std::vector<int64_t>{1, 4},
                     [&](int64_t, const Image& f) { seen.push_back(f.rgb[0]); });
  EXPECT_EQ(seen, (std::vector<int>{10, 40}));
  // A uint8 .npy [3, 2, 2, 3].
  std::string npy = "\x93NUMPY\x01";
  npy.push_back('\0');
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2, 3), }";
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  npy.push_back(static_cast<char>(header.size() & 0xFF));
  npy.push_back(static_cast<char>(header.size() >> 8));
  npy += header;
  for (int i = 0; i < 36; ++i) npy.push_back(static_cast<char>(i));
  const std::string npy_path = dir + "/v.npy";
  test::WriteFile(npy_path, npy);
  auto arr = OpenVideo(npy_path);
  EXPECT_EQ(arr->info().total_frames, 3);
  folder->ReadFrames(std::vector<int64_t>{0}, [](int64_t, const Image&) {});
  std::vector<int> first;
  arr->ReadFrames(std::vector<int64_t>{2},
                  [&](int64_t, const Image& f) { first.push_back(f.rgb[0]); });
  EXPECT_EQ(first, (std::vector<int>{24}));
  // The same array from memory.
  const std::vector<uint8_t> npy_bytes(npy.begin(), npy.end());
  auto mem = OpenVideoMemory(npy_bytes, "upload.npy");
  std::vector<int> mem_first;
  mem->ReadFrames(std::vector<int64_t>{2},
                  [&](int64_t, const Image& f) { mem_first.push_back(f.rgb[0]); });
  EXPECT_EQ(mem_first, (std::vector<int>{24}));
  // Truncated data.
  test::WriteFile(dir + "/short.npy", npy.substr(0, npy.size() - 5));
  EXPECT_THROW(OpenVideo(dir + "/short.npy"), Error);
}

struct VideoFailure {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  bool thrown = false;
};

VideoFailure OpenAndReadFails(const std::string& path, const DecodeLimits& limits = {},
                              const VideoSampling& sampling = {}) {
  VideoFailure f;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    auto v = OpenVideo(path, limits);
    VideoProcessorConfig c;
    c.size_height = c.size_width = 28;
    VideoOptions o;
    o.sampling = sampling;
    VideoProcessor(c, limits).Preprocess(*v, o);
  } catch (const Error& e) {
    f.thrown = true;
    f.code = e.code();
    f.message = e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  return f;
}

void ExpectVideoError(const std::string& path, ErrorCode code, const DecodeLimits& limits = {},
                      const VideoSampling& sampling = {}) {
  const VideoFailure f = OpenAndReadFails(path, limits, sampling);
  ASSERT_TRUE(f.thrown) << path;
  EXPECT_EQ(f.code, code) << f.message;
  EXPECT_NE(f.message.find(path), std::string::npos) << f.message;
  std::printf("  %s -> [%s] %s\n", path.substr(path.rfind('/') + 1).c_str(), ErrorCodeName(f.code),
              f.message.c_str());
}

TEST(VideoBadInput, EmptyGarbageTruncated) {
  const std::string dir = test::MakeTempDir();
  test::WriteFile(dir + "/empty.mp4", "");
  ExpectVideoError(dir + "/empty.mp4", ErrorCode::kInvalidArgument);
  test::WriteFile(dir + "/text.mp4", std::string(5000, 'x'));
  ExpectVideoError(dir + "/text.mp4", ErrorCode::kCorrupt);
  ExpectVideoError(dir + "/missing.mp4", ErrorCode::kNotFound);
  const std::string good = MakeVideo({"h264.mp4", "mp4", "libx264"});
  if (good.empty()) return;
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  // mp4 with its index (moov, written last) cut off.
  test::WriteFile(dir + "/truncated.mp4", bytes.substr(0, bytes.size() / 2));
  ExpectVideoError(dir + "/truncated.mp4", ErrorCode::kCorrupt);
  // Damaged payload: must not crash; either frames or a clean error.
  std::string damaged = bytes;
  for (size_t i = 200; i < damaged.size(); i += 97)
    damaged[i] = static_cast<char>(damaged[i] ^ 0x33);
  test::WriteFile(dir + "/damaged.mp4", damaged);
  const VideoFailure f = OpenAndReadFails(dir + "/damaged.mp4");
  if (f.thrown) {
    EXPECT_NE(f.message.find("damaged.mp4"), std::string::npos);
  }
}

TEST(VideoBadInput, Limits) {
  const std::string good = MakeVideo({"vp8.webm", "webm", "libvpx"});
  if (good.empty()) GTEST_SKIP();
  DecodeLimits duration;
  duration.max_video_seconds = 0.5;  // the video is 1 s
  ExpectVideoError(good, ErrorCode::kLimit, duration);
  DecodeLimits pixels;
  pixels.max_pixels = 1000;  // 64x48 frames
  ExpectVideoError(good, ErrorCode::kLimit, pixels);
  DecodeLimits frames;
  frames.max_video_frames = 10;  // all 24 frames requested
  ExpectVideoError(good, ErrorCode::kLimit, frames);
  // ... but 8 sampled frames are fine.
  EXPECT_FALSE(OpenAndReadFails(good, frames, {8, {}}).thrown);
}

}  // namespace
}  // namespace plm

namespace plm {
namespace {

// A stream whose codec this FFmpeg cannot decode: muxed into NUT with dummy packets.
TEST(VideoBadInput, CodecWithoutDecoderIsUnsupported) {
  const std::string path = test::MakeTempDir() + "/nodecoder.nut";
  bool written = false;
  const AVCodecDescriptor* d = nullptr;
  while (!written && (d = avcodec_descriptor_next(d)) != nullptr) {
    if (d->type != AVMEDIA_TYPE_VIDEO || avcodec_find_decoder(d->id) != nullptr) continue;
    AVFormatContext* fmt = nullptr;
    if (avformat_alloc_output_context2(&fmt, nullptr, "nut", path.c_str()) < 0) break;
    AVStream* st = avformat_new_stream(fmt, nullptr);
    st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
    st->codecpar->codec_id = d->id;
    st->codecpar->width = 64;
    st->codecpar->height = 48;
    st->time_base = {1, 25};
    if (avio_open(&fmt->pb, path.c_str(), AVIO_FLAG_WRITE) >= 0 &&
        avformat_write_header(fmt, nullptr) >= 0) {
      uint8_t payload[64] = {1, 2, 3};
      for (int i = 0; i < 5; ++i) {
        AVPacket* pkt = av_packet_alloc();
        av_new_packet(pkt, sizeof(payload));
        std::memcpy(pkt->data, payload, sizeof(payload));
        pkt->pts = pkt->dts = i;
        pkt->flags = AV_PKT_FLAG_KEY;
        pkt->stream_index = 0;
        av_packet_rescale_ts(pkt, {1, 25}, st->time_base);
        av_interleaved_write_frame(fmt, pkt);
        av_packet_free(&pkt);
      }
      written = av_write_trailer(fmt) >= 0;
    }
    if (fmt->pb != nullptr) avio_closep(&fmt->pb);
    avformat_free_context(fmt);
    // The demuxer may map the tag to a codec that does have a decoder: then try the next one.
    AVFormatContext* in = nullptr;
    if (written && avformat_open_input(&in, path.c_str(), nullptr, nullptr) >= 0) {
      written = in->nb_streams == 1 &&
                avcodec_find_decoder(in->streams[0]->codecpar->codec_id) == nullptr;
      avformat_close_input(&in);
    }
  }
  if (!written) GTEST_SKIP() << "every video codec NUT can carry has a decoder here";
  std::printf("  codec without decoder: %s\n", d->name);
  try {
    OpenVideo(path);
    FAIL() << "opened a video whose codec has no decoder";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find(d->name), std::string::npos) << e.what();
    std::printf("  -> [%s] %s\n", ErrorCodeName(e.code()), e.what());
  }
}

}  // namespace
}  // namespace plm
