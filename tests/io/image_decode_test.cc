// Decoding of every supported format and Pillow-compatible RGB conversion, on files generated
// with the encoder libraries.
#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <cstring>

#include "image_test_files.h"
#include "io/image_decode.h"
#include "io/image_processor.h"
#include "plm/error.h"

namespace plm {
namespace {

using test::Bytes;

Image Decode(const Bytes& b, RgbOptions o = {}) {
  return DecodeImage(b, "test", {}, o);
}

double MeanAbsDiff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(int(a[i]) - int(b[i]));
  return s / static_cast<double>(a.size());
}

TEST(ImageDecode, JpegBaselineAndProgressive) {
  const int w = 64, h = 48;
  test::JpegSpec s{w, h, 3, test::Gradient(w, h, 3)};
  const Image base = Decode(test::EncodeJpeg(s));
  s.progressive = true;
  const Bytes prog_bytes = test::EncodeJpeg(s);
  const Image prog = Decode(prog_bytes);
  ASSERT_EQ(base.width, w);
  ASSERT_EQ(prog.height, h);
  EXPECT_LT(MeanAbsDiff(base.rgb, s.pixels), 2.0);
  EXPECT_LT(MeanAbsDiff(prog.rgb, s.pixels), 2.0);
  const ImageInfo info = ProbeImage(prog_bytes, "p.jpg");
  EXPECT_EQ(info.format, ImageFormat::kJpeg);
  EXPECT_EQ(info.mode, "RGB");
  EXPECT_EQ(info.width, w);
}

TEST(ImageDecode, JpegGrayIsReplicated) {
  const int w = 32, h = 16;
  const Image img = Decode(test::EncodeJpeg({w, h, 1, test::Gradient(w, h, 1)}));
  ASSERT_EQ(img.rgb.size(), size_t(w * h * 3));
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    ASSERT_EQ(img.rgb[i], img.rgb[i + 1]);
    ASSERT_EQ(img.rgb[i], img.rgb[i + 2]);
  }
}

TEST(ImageDecode, JpegCmykUsesPillowConversion) {
  // Flat CMYK (Pillow polarity 10,200,30,40 -> RGB 207,46,190), stored Adobe-inverted.
  const int w = 16, h = 16;
  std::vector<uint8_t> px;
  for (int i = 0; i < w * h; ++i) px.insert(px.end(), {255 - 10, 255 - 200, 255 - 30, 255 - 40});
  const Bytes b = test::EncodeJpeg({w, h, 4, px, 100});
  EXPECT_EQ(ProbeImage(b, "c.jpg").mode, "CMYK");
  const Image img = Decode(b);
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    ASSERT_NEAR(img.rgb[i], 207, 2);
    ASSERT_NEAR(img.rgb[i + 1], 46, 2);
    ASSERT_NEAR(img.rgb[i + 2], 190, 2);
  }
}

// A 3x2 image with pixel values 1..6 (red channel) and what Pillow's exif_transpose makes of it.
struct Orientation {
  int value, w, h;
  std::vector<int> red;
};
const Orientation kOrientations[] = {
    {1, 3, 2, {1, 2, 3, 4, 5, 6}}, {2, 3, 2, {3, 2, 1, 6, 5, 4}}, {3, 3, 2, {6, 5, 4, 3, 2, 1}},
    {4, 3, 2, {4, 5, 6, 1, 2, 3}}, {5, 2, 3, {1, 4, 2, 5, 3, 6}}, {6, 2, 3, {4, 1, 5, 2, 6, 3}},
    {7, 2, 3, {6, 3, 5, 2, 4, 1}}, {8, 2, 3, {3, 6, 2, 5, 1, 4}},
};

TEST(ImageDecode, PngExifOrientationAllEight) {
  std::vector<uint8_t> px;
  for (int i = 1; i <= 6; ++i) {
    px.push_back(static_cast<uint8_t>(i));
    px.push_back(0);
    px.push_back(0);
  }
  for (const Orientation& o : kOrientations) {
    test::PngSpec s{3, 2, PNG_COLOR_TYPE_RGB, 8, px};
    s.exif_orientation = o.value;
    const Bytes b = test::EncodePng(s);
    const ImageInfo info = ProbeImage(b, "o.png");
    EXPECT_EQ(info.orientation, o.value);
    EXPECT_EQ(info.oriented_width(), o.w);
    const Image img = Decode(b);
    ASSERT_EQ(img.width, o.w) << o.value;
    ASSERT_EQ(img.height, o.h) << o.value;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(img.rgb[i * 3], o.red[i]) << "orientation " << o.value;
    // The as-loaded path ignores EXIF.
    const Image raw = Decode(b, {false, AlphaHandling::kDrop});
    EXPECT_EQ(raw.width, 3);
  }
}

TEST(ImageDecode, JpegExifOrientationRotates) {
  // Left half black, right half white; orientation 6 (rotate 90 clockwise) puts white at the
  // bottom.
  const int w = 32, h = 16;
  std::vector<uint8_t> px(w * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) px[(y * w + x) * 3 + c] = x < w / 2 ? 0 : 255;
    }
  }
  test::JpegSpec s{w, h, 3, px};
  s.exif_orientation = 6;
  const Image img = Decode(test::EncodeJpeg(s));
  ASSERT_EQ(img.width, h);
  ASSERT_EQ(img.height, w);
  EXPECT_LT(img.rgb[0], 30);                              // top-left: black
  EXPECT_GT(img.rgb[(img.rgb.size() / 3 - 1) * 3], 225);  // bottom-right: white
}

TEST(ImageDecode, PngModes) {
  // 8-bit gray.
  {
    const Image img = Decode(test::EncodePng({2, 1, PNG_COLOR_TYPE_GRAY, 8, {7, 200}}));
    EXPECT_EQ(img.rgb, (std::vector<uint8_t>{7, 7, 7, 200, 200, 200}));
  }
  // Gray + alpha: alpha dropped.
  {
    const Image img = Decode(test::EncodePng({2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {7, 0, 200, 9}}));
    EXPECT_EQ(img.rgb, (std::vector<uint8_t>{7, 7, 7, 200, 200, 200}));
  }
  // RGBA with transparent pixels: the stored colour is kept, not composited.
  {
    const Bytes b =
        test::EncodePng({2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, {10, 20, 30, 0, 1, 2, 3, 128}});
    EXPECT_EQ(Decode(b).rgb, (std::vector<uint8_t>{10, 20, 30, 1, 2, 3}));
    // Optional: composite over white like transformers 4.x (Pillow alpha_composite values).
    const Image white = Decode(b, {true, AlphaHandling::kCompositeOverWhite});
    EXPECT_EQ(white.rgb[0], 255);
    EXPECT_EQ(white.rgb[3], 128);  // c=1, a=128 -> Pillow gives 128
    EXPECT_EQ(ProbeImage(b, "a.png").mode, "RGBA");
  }
  // Palette with transparency: colours come from the palette, transparency is ignored.
  {
    test::PngSpec s{3, 1, PNG_COLOR_TYPE_PALETTE, 8, {0, 1, 2}, {255, 0, 0, 0, 255, 0, 0, 0, 255}};
    s.trns = {0, 128};
    EXPECT_EQ(Decode(test::EncodePng(s)).rgb,
              (std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255}));
  }
  // 4-bit palette, 2-bit and 1-bit gray (Pillow scales sub-byte gray by 17 / 85 / 255).
  {
    test::PngSpec s{2, 1, PNG_COLOR_TYPE_PALETTE, 4, {0x10}, {1, 2, 3, 4, 5, 6}};
    EXPECT_EQ(Decode(test::EncodePng(s)).rgb, (std::vector<uint8_t>{4, 5, 6, 1, 2, 3}));
    EXPECT_EQ(Decode(test::EncodePng({4, 1, PNG_COLOR_TYPE_GRAY, 2, {0x1B}})).rgb,
              (std::vector<uint8_t>{0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}));
    EXPECT_EQ(Decode(test::EncodePng({2, 1, PNG_COLOR_TYPE_GRAY, 1, {0x80}})).rgb,
              (std::vector<uint8_t>{255, 255, 255, 0, 0, 0}));
  }
  // 16-bit gray: Pillow's I;16 -> RGB clips at 255.
  {
    const Bytes b = test::EncodePng({3, 1, PNG_COLOR_TYPE_GRAY, 16, {0, 7, 0, 255, 1, 0}});
    EXPECT_EQ(ProbeImage(b, "g.png").mode, "I;16");
    EXPECT_EQ(Decode(b).rgb, (std::vector<uint8_t>{7, 7, 7, 255, 255, 255, 255, 255, 255}));
  }
  // 16-bit RGB: the high byte.
  {
    const Bytes b =
        test::EncodePng({1, 1, PNG_COLOR_TYPE_RGB, 16, {0x12, 0xFF, 0xAB, 0x01, 0, 0x80}});
    EXPECT_EQ(Decode(b).rgb, (std::vector<uint8_t>{0x12, 0xAB, 0}));
  }
}

TEST(ImageDecode, PngInterlacedEqualsPlain) {
  const int w = 37, h = 23;
  test::PngSpec s{w, h, PNG_COLOR_TYPE_RGB, 8, test::Gradient(w, h, 3)};
  const Image plain = Decode(test::EncodePng(s));
  s.interlace = true;
  const Image adam7 = Decode(test::EncodePng(s));
  EXPECT_EQ(plain.rgb, s.pixels);
  EXPECT_EQ(adam7.rgb, s.pixels);
}

TEST(ImageDecode, WebpLosslessExactLossyClose) {
  const int w = 40, h = 30;
  const auto rgb = test::Gradient(w, h, 3);
  EXPECT_EQ(Decode(test::EncodeWebp(w, h, rgb, false, true)).rgb, rgb);
  auto rgba = test::Gradient(w, h, 4);
  const Image a = Decode(test::EncodeWebp(w, h, rgba, true, true));
  for (int i = 0; i < w * h; ++i) {
    // Lossless WebP may rewrite the colour of fully transparent pixels; others are exact.
    if (rgba[i * 4 + 3] == 0) continue;
    ASSERT_EQ(a.rgb[i * 3], rgba[i * 4]);
    ASSERT_EQ(a.rgb[i * 3 + 2], rgba[i * 4 + 2]);
  }
  EXPECT_LT(MeanAbsDiff(Decode(test::EncodeWebp(w, h, rgb, false, false)).rgb, rgb), 4.0);
  EXPECT_EQ(ProbeImage(test::EncodeWebp(w, h, rgba, true, true), "x.webp").mode, "RGBA");
}

TEST(ImageDecode, GifFirstFrameOnScreen) {
  test::GifSpec g;
  g.screen_w = 4;
  g.screen_h = 2;
  g.palette = {0, 0, 0, 255, 0, 0, 0, 255, 0, 9, 9, 9};
  g.transparent_index = 3;
  g.frames.push_back({1, 0, 2, 2, {1, 2, 2, 3}});  // a 2x2 frame at x = 1
  g.frames.push_back({0, 0, 4, 2, std::vector<uint8_t>(8, 2)});
  const Image img = Decode(test::EncodeGif(g));
  ASSERT_EQ(img.width, 4);
  ASSERT_EQ(img.height, 2);
  // Outside the frame: the transparent index (its palette colour); inside: the frame.
  const std::vector<uint8_t> want = {9, 9, 9, 255, 0,   0, 0, 255, 0, 9, 9, 9,  //
                                     9, 9, 9, 0,   255, 0, 9, 9,   9, 9, 9, 9};
  EXPECT_EQ(img.rgb, want);
}

TEST(ImageDecode, Bmp24AndPalette) {
  const int w = 5, h = 3;
  const auto rgb = test::Gradient(w, h, 3);
  const Bytes b = test::EncodeBmp(w, h, rgb, false);
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(SniffImageFormat(b), ImageFormat::kBmp);
  EXPECT_EQ(Decode(b).rgb, rgb);
  std::vector<uint8_t> idx(w * h);
  for (int i = 0; i < w * h; ++i) idx[i] = static_cast<uint8_t>(i % 3);
  const std::vector<uint8_t> pal = {10, 20, 30, 40, 50, 60, 70, 80, 90};
  const Image p = Decode(test::EncodeBmp(w, h, idx, true, pal));
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(p.rgb[i * 3 + 1], pal[idx[i] * 3 + 1]);
}

TEST(ImageDecode, FormatComesFromContentNotExtension) {
  const Bytes png = test::EncodePng({1, 1, PNG_COLOR_TYPE_GRAY, 8, {42}});
  const std::string path = test::WriteTemp("really_a_png.jpg", png);
  EXPECT_EQ(LoadImageFile(path).rgb, (std::vector<uint8_t>{42, 42, 42}));
  EXPECT_EQ(ProbeImageFile(path).format, ImageFormat::kPng);
}

TEST(ImageDecode, TokenCountBeforePixelsMatchesPreprocessing) {
  ImageProcessorConfig c;
  c.tile_size = 112;
  c.max_num_tiles = 6;
  const ImageProcessor p(c);
  for (const Orientation& o : {kOrientations[0], kOrientations[5]}) {
    const int w = 300, h = 120;
    test::PngSpec s{w, h, PNG_COLOR_TYPE_RGB, 8, test::Gradient(w, h, 3)};
    s.exif_orientation = o.value;
    const Bytes b = test::EncodePng(s);
    const ImageInfo info = ProbeImage(b, "t.png");
    const int64_t tokens = p.CountTokens(info.oriented_width(), info.oriented_height());
    const ProcessedImage out = p.Preprocess(Decode(b));
    EXPECT_EQ(tokens, out.num_tiles * p.TokensPerTile());
    // Per-request max tiles: fewer tiles, fewer tokens.
    const ImageOptions two{2, false, 0};
    EXPECT_EQ(p.Preprocess(Decode(b), two).num_tiles,
              p.CountTiles(info.oriented_width(), info.oriented_height(), two));
    EXPECT_LE(p.CountTiles(info.oriented_width(), info.oriented_height(), two), 3);
  }
  EXPECT_EQ(p.TokensPerTile(), 16);  // (112 / 14 / 2)^2
}

}  // namespace
}  // namespace plm
