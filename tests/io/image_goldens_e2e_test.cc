// End to end: the model goldens' pixel inputs (image, multi_image, video) must be reproducible
// from the files in inputs/ with the model folder's processor_config.json. The goldens do not say
// which file was used, so each case is matched against every input (and, for multi_image, every
// ordered pair); a case with no exact match fails.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>

#include "io/image_decode.h"
#include "io/image_processor.h"
#include "io/safetensors.h"
#include "io/video_processor.h"
#include "io/video_source.h"
#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

bool IsImageFile(const std::string& f) {
  for (const char* ext : {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}) {
    const std::string e(ext);
    if (f.size() > e.size() && f.substr(f.size() - e.size()) == e) return true;
  }
  return false;
}

bool SameValues(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

class GoldensFromInputs : public ::testing::Test {
 protected:
  std::string fixtures_ = test::FixturesDir();
  std::vector<std::string> Models() { return test::ListDir(fixtures_ + "/goldens", true); }
};

TEST_F(GoldensFromInputs, ImageAndMultiImage) {
  int cases = 0;
  for (const std::string& model : Models()) {
    const ImageProcessor processor(ImageProcessorConfig::Load(fixtures_ + "/models/" + model));
    // Every input image, processed once (chat path).
    std::map<std::string, ProcessedImage> processed;
    for (const auto& f : test::ListDir(fixtures_ + "/inputs", false)) {
      if (IsImageFile(f)) {
        processed[f] = processor.Preprocess(LoadImageFile(fixtures_ + "/inputs/" + f));
      }
    }
    for (const std::string golden : {"image", "multi_image"}) {
      const std::string path = fixtures_ + "/goldens/" + model + "/" + golden + ".safetensors";
      if (!test::PathExists(path)) continue;
      const SafetensorsFile st(path);
      if (!st.Has("input.pixel_values")) continue;
      const TensorView& t = st.Get("input.pixel_values");
      const std::vector<float> want = t.ToF32();
      const int64_t tiles = t.shape[1];
      const size_t per_tile = static_cast<size_t>(t.shape[2] * t.shape[3] * t.shape[4]);
      std::vector<std::string> match;
      if (golden == "image") {
        for (const auto& [f, p] : processed) {
          if (p.num_tiles == tiles && p.tile_size == t.shape[4] &&
              SameValues(p.pixel_values.data(), want.data(), want.size())) {
            match.push_back(f);
          }
        }
      } else {
        for (const auto& [a, pa] : processed) {
          for (const auto& [b, pb] : processed) {
            if (pa.num_tiles + pb.num_tiles != tiles || pa.tile_size != t.shape[4]) continue;
            const size_t na = static_cast<size_t>(pa.num_tiles) * per_tile;
            if (SameValues(pa.pixel_values.data(), want.data(), na) &&
                SameValues(pb.pixel_values.data(), want.data() + na, want.size() - na)) {
              match.push_back(a + " + " + b);
            }
          }
        }
      }
      std::printf("[%s] %-11s %lld tiles: %s\n", model.c_str(), golden.c_str(),
                  static_cast<long long>(tiles),
                  match.empty() ? "NO MATCH" : ("reproduced from " + match[0]).c_str());
      EXPECT_FALSE(match.empty()) << model << "/" << golden
                                  << ": no input file reproduces the golden pixel values";
      ++cases;
    }
  }
  EXPECT_GT(cases, 0) << "no image goldens under " << fixtures_ << "/goldens";
}

TEST_F(GoldensFromInputs, Video) {
  int cases = 0;
  for (const std::string& model : Models()) {
    const std::string path = fixtures_ + "/goldens/" + model + "/video.safetensors";
    if (!test::PathExists(path)) continue;
    const SafetensorsFile st(path);
    if (!st.Has("input.pixel_values_videos")) continue;
    const VideoProcessor processor(VideoProcessorConfig::Load(fixtures_ + "/models/" + model));
    const TensorView& t = st.Get("input.pixel_values_videos");
    const std::vector<float> want = t.ToF32();
    std::string match;
    for (const auto& f : test::ListDir(fixtures_ + "/inputs", false)) {
      if (IsImageFile(f)) continue;
      std::unique_ptr<VideoFrameSource> video;
      try {
        video = OpenVideo(fixtures_ + "/inputs/" + f);
      } catch (const Error&) {
        continue;  // not a video
      }
      // The README says "all frames"; also try what a uniform sample of that many would give.
      for (const bool all : {true, false}) {
        VideoOptions options;
        if (!all) options.sampling.num_frames = t.shape[1];
        if (!all && t.shape[1] > video->info().total_frames) continue;
        const ProcessedVideo out = processor.Preprocess(*video, options);
        if (out.num_frames == t.shape[1] && out.tile_size == t.shape[4] &&
            SameValues(out.pixel_values.data(), want.data(), want.size())) {
          match = f + (all ? " (all frames)" : " (num_frames sampling)");
          break;
        }
      }
      if (!match.empty()) break;
    }
    std::printf("[%s] video       %lld frames: %s\n", model.c_str(),
                static_cast<long long>(t.shape[1]),
                match.empty() ? "NO MATCH" : ("reproduced from " + match).c_str());
    EXPECT_FALSE(match.empty()) << model << "/video: no input reproduces the golden";
    ++cases;
  }
  EXPECT_GT(cases, 0) << "no video goldens under " << fixtures_ << "/goldens";
}

}  // namespace
}  // namespace plm
