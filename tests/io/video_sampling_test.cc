// Frame selection against the reference's table (video_processor/sampling.json), including what
// we do where the reference refuses.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/json.h"
#include "io/video_sampling.h"
#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<int64_t> Range(int64_t n) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(i);
  return v;
}

TEST(VideoSampling, MatchesReferenceTable) {
  const std::string path = test::FixturesDir() + "/video_processor/sampling.json";
  ASSERT_TRUE(test::PathExists(path)) << path;
  const Json j = ReadJsonFile(path);
  int exact = 0, refused = 0;
  for (const Json& row : j.at("rows")) {
    const int64_t total = row.at("total_frames").get<int64_t>();
    const double fps = row.at("fps").get<double>();
    const Json& kw = row.at("kwargs");
    VideoSampling s;
    double video_fps = fps;
    if (kw.is_object()) {
      if (kw.contains("num_frames")) s.num_frames = kw.at("num_frames").get<int64_t>();
      if (kw.contains("fps")) s.fps = kw.at("fps").get<double>();
    } else {
      video_fps = 0;  // "defaults, no metadata"
    }
    const std::vector<int64_t> got = SampleFrameIndices(total, video_fps, s);
    const std::string what =
        "total " + std::to_string(total) + " fps " + std::to_string(fps) + " kwargs " + kw.dump();
    if (row.contains("indices")) {
      EXPECT_EQ(got, row.at("indices").get<std::vector<int64_t>>()) << what;
      ++exact;
    } else if (row.contains("shape")) {
      EXPECT_EQ(static_cast<int64_t>(got.size()), row.at("shape")[1].get<int64_t>()) << what;
      EXPECT_EQ(got, Range(total)) << what;
      ++exact;
    } else {
      // The reference refuses; our documented answer.
      ASSERT_TRUE(row.contains("error")) << what;
      if (s.num_frames) {
        EXPECT_EQ(got, Range(total)) << what << " (more frames than the video: all frames)";
      } else if (s.fps) {
        EXPECT_EQ(got, std::vector<int64_t>{0}) << what << " (fps -> 0 or 1 frames: frame 0)";
      } else {
        EXPECT_EQ(got, Range(total)) << what << " (no num_frames/fps: all frames)";
      }
      std::printf("reference refused (%s): %s -> we return %zu frames\n",
                  row.at("error").get<std::string>().substr(0, 40).c_str(), what.c_str(),
                  got.size());
      ++refused;
    }
  }
  std::printf("%d rows exact, %d rows where the reference refuses\n", exact, refused);
  EXPECT_GT(exact, 0);
}

TEST(VideoSampling, UniformIndicesAreFloorForExactSteps) {
  for (int64_t total : {32, 64, 100, 300, 1000}) {
    const auto got = SampleFrameIndices(total, 30, {32, {}});
    ASSERT_EQ(got.size(), 32u);
    for (int64_t i = 0; i < 32; ++i) EXPECT_EQ(got[i], i * total / 32) << total;
  }
}

TEST(VideoSampling, ExtraArangeElementIsDropped) {
  // torch.arange(0, 17, 17/7) has 8 elements (the last one is 17, past the end); we keep 7.
  const auto got = SampleFrameIndices(17, 30, {7, {}});
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got, (std::vector<int64_t>{0, 2, 4, 7, 9, 12, 14}));
  for (int64_t total = 1; total < 400; ++total) {
    for (int64_t n = 1; n <= total; n += 7) {
      const auto v = SampleFrameIndices(total, 30, {n, {}});
      ASSERT_EQ(static_cast<int64_t>(v.size()), n);
      for (size_t i = 1; i < v.size(); ++i) ASSERT_LT(v[i - 1], v[i]);
      ASSERT_LT(v.back(), total);
    }
  }
}

TEST(VideoSampling, BadRequests) {
  auto code = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code([] { SampleFrameIndices(0, 30, {}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code([] { SampleFrameIndices(10, 30, {4, 1.0}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code([] { SampleFrameIndices(10, 30, {0, {}}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code([] { SampleFrameIndices(10, 30, {{}, -1.0}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code([] { SampleFrameIndices(10, 0, {{}, 1.0}); }), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace plm
