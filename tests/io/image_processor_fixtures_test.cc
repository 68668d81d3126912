// Every image in inputs/ through every processor config in image_processor/: bit-exact against
// the reference's pixel values, in both the chat path (EXIF + convert("RGB")) and the as-loaded
// path. Prints per file the max and mean absolute error (and the max in 8-bit levels).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "image_test_util.h"
#include "io/image_decode.h"
#include "io/image_processor.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<std::string> ProcessorNames() {
  std::vector<std::string> out;
  for (const auto& f : test::ListDir(test::FixturesDir() + "/image_processor", false)) {
    if (f.size() > 5 && f.substr(f.size() - 5) == ".json") out.push_back(f.substr(0, f.size() - 5));
  }
  return out;
}

TEST(ImageProcessorFixtures, EveryImageEveryConfigBitExact) {
  const std::string fixtures = test::FixturesDir();
  const auto procs = ProcessorNames();
  ASSERT_FALSE(procs.empty()) << "no processor fixtures under " << fixtures << "/image_processor";
  int compared = 0;
  for (const std::string& proc : procs) {
    const std::string base = fixtures + "/image_processor/" + proc;
    const Json meta = ReadJsonFile(base + ".json");
    const SafetensorsFile st(base + ".safetensors");
    ImageProcessorConfig config;
    std::string source;
    ASSERT_TRUE(test::FindProcessorConfig(fixtures, proc, meta, &config, &source))
        << proc << ": no processor config found or inferable";
    std::printf("[%s] config: %s\n", proc.c_str(), source.c_str());
    const ImageProcessor processor(config);
    for (const auto& [file, entry] : meta.items()) {
      if (!entry.is_object() || !entry.contains("pixel_values_shape")) continue;
      std::string key = file;
      for (char& ch : key) {
        if (ch == '.') ch = '_';
      }
      const int stride = entry.value("subsample_stride", 1);
      const std::string path = fixtures + "/inputs/" + file;
      struct Variant {
        const char* suffix;
        const char* shape_key;
        RgbOptions options;
      };
      const Variant variants[] = {
          {".rgb.sub", "rgb_pixel_values_shape", RgbOptions{true, AlphaHandling::kDrop}},
          {".sub", "pixel_values_shape", RgbOptions{false, AlphaHandling::kDrop}},
      };
      for (const Variant& v : variants) {
        if (!st.Has(key + v.suffix)) continue;
        const Image img = LoadImageFile(path, {}, v.options);
        const ProcessedImage out = processor.Preprocess(img);
        const auto& shape =
            entry.contains(v.shape_key) ? entry[v.shape_key] : entry["pixel_values_shape"];
        ASSERT_EQ(out.num_tiles, shape[1].get<int64_t>()) << proc << " " << file << v.suffix;
        ASSERT_EQ(out.tile_size, shape[4].get<int>()) << proc << " " << file;
        EXPECT_EQ(processor.CountTiles(img.width, img.height), out.num_tiles);
        const std::vector<float> got =
            test::Subsample(out.pixel_values, out.num_tiles, out.tile_size, stride);
        const TensorView& want_t = st.Get(key + v.suffix);
        const std::vector<float> want = want_t.ToF32();
        ASSERT_EQ(got.size(), want.size()) << proc << " " << file << v.suffix;
        const test::ErrorStats e = test::Compare(got.data(), want.data(), got.size());
        std::printf("  %-24s %-9s tiles %3lld grid %dx%d  max %.3g mean %.3g (max %.1f levels)\n",
                    file.c_str(), v.suffix, static_cast<long long>(out.num_tiles), out.grid.cols,
                    out.grid.rows, e.max_abs, e.mean_abs, e.max_abs * 127.5);
        EXPECT_EQ(e.max_abs, 0.0) << proc << " " << file << v.suffix;
        ++compared;
        // Full-tile statistics (cover the pixels the subsampling skips).
        if (std::string(v.suffix) == ".sub" && st.Has(key + ".mean")) {
          std::vector<double> mean, sd;
          test::TileChannelStats(out.pixel_values, out.num_tiles, out.tile_size, &mean, &sd);
          const auto want_mean = st.Get(key + ".mean").ToF32();
          const auto want_std = st.Get(key + ".std").ToF32();
          ASSERT_EQ(mean.size(), want_mean.size());
          for (size_t i = 0; i < mean.size(); ++i) {
            EXPECT_NEAR(mean[i], want_mean[i], 1e-5) << proc << " " << file << " mean " << i;
            EXPECT_NEAR(sd[i], want_std[i], 1e-5) << proc << " " << file << " std " << i;
          }
        }
      }
    }
  }
  std::printf("compared %d (processor, image, path) cases\n", compared);
  EXPECT_GT(compared, 0);
}

// Single-tile ("vanilla") mode is the thumbnail alone: equal to tile 0 of thumb+tile.
TEST(ImageProcessorFixtures, SingleTileModeIsTheThumbnail) {
  const std::string dir = test::FixturesDir() + "/inputs";
  ImageProcessorConfig c;
  c.tile_size = 112;
  c.max_num_tiles = 6;
  const ImageProcessor tiled(c);
  c.vision_input_type = "vanilla";
  const ImageProcessor vanilla(c);
  int n = 0;
  for (const auto& f : test::ListDir(dir, false)) {
    if (f.size() < 4 || f.substr(f.size() - 4) == ".npy") continue;
    const Image img = LoadImageFile(dir + "/" + f);
    const ProcessedImage a = tiled.Preprocess(img);
    const ProcessedImage b = vanilla.Preprocess(img);
    ASSERT_EQ(b.num_tiles, 1);
    EXPECT_EQ(vanilla.CountTiles(img.width, img.height), 1);
    ASSERT_TRUE(std::equal(b.pixel_values.begin(), b.pixel_values.end(), a.pixel_values.begin()))
        << f;
    const ProcessedImage forced = tiled.Preprocess(img, ImageOptions{{}, true, 0});
    EXPECT_EQ(forced.pixel_values, b.pixel_values) << f;
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace plm
