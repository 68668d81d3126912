// Broken, hostile and unsupported image input: a clear plm::Error naming the file, quickly.
#include <gtest/gtest.h>
#include <png.h>

#include <chrono>
#include <cstring>
#include <string>

#include "image_test_files.h"
#include "io/image_decode.h"
#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

using test::Bytes;

struct Failure {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  double seconds = 0;
  bool thrown = false;
};

Failure DecodeFails(const Bytes& b, const std::string& name, const DecodeLimits& limits = {}) {
  Failure f;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    DecodeImage(b, name, limits);
  } catch (const Error& e) {
    f.thrown = true;
    f.code = e.code();
    f.message = e.what();
  }
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return f;
}

void ExpectError(const Bytes& b, const std::string& name, ErrorCode code,
                 const DecodeLimits& limits = {}) {
  const Failure f = DecodeFails(b, name, limits);
  ASSERT_TRUE(f.thrown) << name << ": decoded without error";
  EXPECT_EQ(f.code, code) << name << ": " << f.message;
  EXPECT_NE(f.message.find(name), std::string::npos) << "message must name the file: " << f.message;
  EXPECT_LT(f.seconds, 2.0) << name;
  std::printf("  %-26s -> [%s] %s\n", name.c_str(), ErrorCodeName(f.code), f.message.c_str());
}

std::vector<std::pair<std::string, Bytes>> GoodFiles() {
  const int w = 64, h = 48;
  const auto rgb = test::Gradient(w, h, 3);
  test::JpegSpec prog{w, h, 3, rgb};
  prog.progressive = true;
  test::GifSpec g{
      w, h, {0, 0, 0, 255, 255, 255}, -1, {{0, 0, w, h, std::vector<uint8_t>(w * h, 1)}}};
  return {
      {"a.jpg", test::EncodeJpeg({w, h, 3, rgb})},
      {"p.jpg", test::EncodeJpeg(prog)},
      {"a.png", test::EncodePng({w, h, PNG_COLOR_TYPE_RGB, 8, rgb})},
      {"a.webp", test::EncodeWebp(w, h, rgb, false, false)},
      {"l.webp", test::EncodeWebp(w, h, rgb, false, true)},
      {"a.gif", test::EncodeGif(g)},
      {"a.bmp", test::EncodeBmp(w, h, rgb, false)},
  };
}

TEST(ImageBadInput, EmptyAndUnknown) {
  ExpectError({}, "empty.png", ErrorCode::kInvalidArgument);
  ExpectError({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'}, "text.jpg",
              ErrorCode::kUnsupported);
  ExpectError({0x00, 0x00, 0x01, 0x00}, "icon.ico", ErrorCode::kUnsupported);
}

TEST(ImageBadInput, TruncatedFilesOfEveryFormat) {
  for (const auto& [name, bytes] : GoodFiles()) {
    ASSERT_NO_THROW(DecodeImage(bytes, name)) << name;
    for (const double keep : {0.5, 0.1}) {
      Bytes cut(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() * keep));
      ExpectError(cut, "truncated_" + name, ErrorCode::kCorrupt);
    }
    // Just the magic bytes.
    ExpectError(Bytes(bytes.begin(), bytes.begin() + 4), "stub_" + name, ErrorCode::kCorrupt);
  }
}

TEST(ImageBadInput, CorruptedBytesNeverCrash) {
  // Flip bytes all over each file: either a clean decode or a plm::Error, within bounded time.
  for (const auto& [name, bytes] : GoodFiles()) {
    for (size_t step = 7; step < 200; step += 37) {
      Bytes b = bytes;
      for (size_t i = 16; i < b.size(); i += step) b[i] ^= 0x5A;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        const Image img = DecodeImage(b, name);
        EXPECT_EQ(img.rgb.size(), static_cast<size_t>(img.width) * img.height * 3);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos);
      }
      EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
    }
  }
}

TEST(ImageBadInput, DecompressionBombHeaders) {
  // 60000 x 60000 PNG: refused from the header, before any allocation.
  ExpectError(test::PngHeaderOnly(60000, 60000), "bomb.png", ErrorCode::kLimit);
  ExpectError(test::PngHeaderOnly(0, 10), "zero_width.png", ErrorCode::kCorrupt);
  // A GIF whose logical screen is 65535 x 65535.
  test::GifSpec g{65535, 65535, {0, 0, 0, 255, 255, 255}, -1, {{0, 0, 1, 1, {1}}}};
  ExpectError(test::EncodeGif(g), "bomb.gif", ErrorCode::kLimit);
  // A JPEG whose SOF claims 65000 x 65000: patch the size of a real file.
  Bytes jpg = test::EncodeJpeg({16, 16, 3, test::Gradient(16, 16, 3)});
  for (size_t i = 2; i + 9 < jpg.size(); ++i) {
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      jpg[i + 5] = 0xFD;
      jpg[i + 6] = 0xE8;
      jpg[i + 7] = 0xFD;
      jpg[i + 8] = 0xE8;
      break;
    }
  }
  ExpectError(jpg, "bomb.jpg", ErrorCode::kLimit);
  // BMP header claiming 100000 x 100000.
  Bytes bmp = test::EncodeBmp(4, 4, test::Gradient(4, 4, 3), false);
  const uint32_t big = 100000;
  std::memcpy(&bmp[18], &big, 4);
  std::memcpy(&bmp[22], &big, 4);
  ExpectError(bmp, "bomb.bmp", ErrorCode::kLimit);
}

TEST(ImageBadInput, ConfigurableLimits) {
  const Bytes png = test::EncodePng({64, 48, PNG_COLOR_TYPE_RGB, 8, test::Gradient(64, 48, 3)});
  DecodeLimits small;
  small.max_pixels = 1000;
  ExpectError(png, "big_for_limit.png", ErrorCode::kLimit, small);
  DecodeLimits tiny_file;
  tiny_file.max_file_bytes = 100;
  ExpectError(png, "big_file.png", ErrorCode::kLimit, tiny_file);
  test::JpegSpec prog{64, 48, 3, test::Gradient(64, 48, 3)};
  prog.progressive = true;
  DecodeLimits scans;
  scans.max_jpeg_scans = 2;
  ExpectError(test::EncodeJpeg(prog), "many_scans.jpg", ErrorCode::kLimit, scans);
  // Probing applies the same limits.
  EXPECT_THROW(ProbeImage(png, "probe.png", small), Error);
}

TEST(ImageBadInput, FilesystemErrors) {
  try {
    LoadImageFile("/nonexistent/dir/x.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.png"), std::string::npos);
  }
  const std::string dir = test::MakeTempDir();
  try {
    LoadImageFile(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  const std::string empty = test::WriteTemp("empty.jpg", {});
  try {
    LoadImageFile(empty);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos);
  }
}

}  // namespace
}  // namespace plm
