// The fixture video (.npy frames) through every video processor config: bit-exact per frame.
#include <gtest/gtest.h>

#include <cstdio>

#include "image_test_util.h"
#include "io/safetensors.h"
#include "io/video_processor.h"
#include "io/video_source.h"
#include "support/test_support.h"

namespace plm {
namespace {

// The video processor config for fixture processor `proc`: stored config when there is one,
// else the size from the fixture shape with the default PerceptionLM settings.
VideoProcessorConfig FindVideoConfig(const std::string& fixtures, const std::string& proc, int tile,
                                     std::string* source) {
  for (const std::string dir : {"models", "processors"}) {
    const std::string path = fixtures + "/" + dir + "/" + proc + "/processor_config.json";
    if (test::PathExists(path)) {
      *source = path;
      return VideoProcessorConfig::Load(path);
    }
  }
  VideoProcessorConfig c;
  c.size_height = c.size_width = tile;
  *source = "inferred: size " + std::to_string(tile);
  return c;
}

TEST(VideoProcessorFixtures, EveryConfigBitExact) {
  const std::string fixtures = test::FixturesDir();
  int compared = 0;
  for (const auto& f : test::ListDir(fixtures + "/video_processor", false)) {
    if (f.size() < 5 || f.substr(f.size() - 5) != ".json" || f == "sampling.json") continue;
    const std::string proc = f.substr(0, f.size() - 5);
    const std::string base = fixtures + "/video_processor/" + proc;
    const Json meta = ReadJsonFile(base + ".json");
    const SafetensorsFile st(base + ".safetensors");
    const std::string video_path = fixtures + "/inputs/" + meta.at("video").get<std::string>();
    for (const std::string variant : {"all_frames", "sampled8"}) {
      if (!meta.contains(variant)) continue;
      const Json& v = meta.at(variant);
      const int tile = v.at("shape")[3].get<int>();
      std::string source;
      const VideoProcessor processor(FindVideoConfig(fixtures, proc, tile, &source));
      const double fps = v.value("fps", 0.0);
      auto video = OpenVideo(video_path, {}, fps);
      VideoOptions options;
      if (v.contains("frame_indices")) {
        options.sampling.num_frames = static_cast<int64_t>(v.at("frame_indices").size());
      }
      const ProcessedVideo out = processor.Preprocess(*video, options);
      ASSERT_EQ(out.num_frames, v.at("shape")[1].get<int64_t>()) << proc << " " << variant;
      ASSERT_EQ(out.tile_size, tile);
      if (v.contains("frame_indices")) {
        EXPECT_EQ(out.frame_indices, v.at("frame_indices").get<std::vector<int64_t>>());
      }
      EXPECT_EQ(processor.CountTokens(video->info(), options),
                out.num_frames * processor.TokensPerFrame());
      const int stride = v.value("subsample_stride", 1);
      const auto got = test::Subsample(out.pixel_values, out.num_frames, tile, stride);
      const auto want = st.Get(variant + ".sub").ToF32();
      ASSERT_EQ(got.size(), want.size()) << proc << " " << variant;
      const test::ErrorStats e = test::Compare(got.data(), want.data(), got.size());
      std::printf("[%s] %-10s (%s) frames %lld  max %.3g mean %.3g (max %.1f levels)\n",
                  proc.c_str(), variant.c_str(), source.c_str(),
                  static_cast<long long>(out.num_frames), e.max_abs, e.mean_abs, e.max_abs * 127.5);
      EXPECT_EQ(e.max_abs, 0.0) << proc << " " << variant;
      if (st.Has(variant + ".mean")) {
        std::vector<double> mean, sd;
        test::TileChannelStats(out.pixel_values, out.num_frames, tile, &mean, &sd);
        const auto want_mean = st.Get(variant + ".mean").ToF32();
        ASSERT_EQ(mean.size(), want_mean.size());
        for (size_t i = 0; i < mean.size(); ++i) EXPECT_NEAR(mean[i], want_mean[i], 1e-5);
      }
      ++compared;
    }
  }
  EXPECT_GT(compared, 0) << "no video fixtures found";
}

}  // namespace
}  // namespace plm
