// The reference processor's call kwargs through PerceptionLMProcessor (MediaOptions): each option
// that changes the output is checked against the fixtures' reference pixel values (directly, or
// derived exactly from them: the fixtures hold normalised uint8 values, so the uint8 samples and
// hence every rescale/normalise variant follow), options the reference ignores leave the output
// unchanged, and unsupported values are clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/json.h"
#include "io/safetensors.h"
#include "plm/error.h"
#include "plm/processor.h"
#include "support/test_support.h"

namespace plm {
namespace {

struct Fixture {
  std::string model_dir, name;
  std::unique_ptr<PerceptionLMProcessor> proc;
};

// Fixture models that have image-processor fixtures of their own name.
std::vector<Fixture> Models() {
  std::vector<Fixture> out;
  const std::string root = test::FixturesDir();
  for (const auto& m : test::ListDir(root + "/models", true)) {
    if (!test::PathExists(root + "/models/" + m + "/config.json")) continue;
    if (!test::PathExists(root + "/image_processor/" + m + ".safetensors")) continue;
    out.push_back(
        {root + "/models/" + m, m, PerceptionLMProcessor::FromPretrained(root + "/models/" + m)});
  }
  return out;
}

Conversation WithImage(const std::string& path) {
  return {{"user", {ContentPart::Image(path), ContentPart::Text("Describe.")}}};
}
Conversation WithVideo(const std::string& path) {
  return {{"user", {ContentPart::Video(path), ContentPart::Text("Describe.")}}};
}

// pixel_values[..., ::s, ::s] of [tiles, 3, T, T].
std::vector<float> Sub(const std::vector<float>& pv, int64_t tiles, int T, int s) {
  std::vector<float> out;
  for (int64_t t = 0; t < tiles; ++t)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < T; y += s)
        for (int x = 0; x < T; x += s) out.push_back(pv[((t * 3 + c) * T + y) * T + x]);
  return out;
}

// The reference's fused rescale + normalise in float32 (plm-spec.md §2.6), per option set.
struct Norm {
  bool do_rescale = true, do_normalize = true;
  double rescale = 1.0 / 255.0;
  std::array<double, 3> mean{0.5, 0.5, 0.5}, std{0.5, 0.5, 0.5};
  float Apply(int u, int c) const {
    const float x = static_cast<float>(u);
    if (do_normalize) {
      // torch: float32(mean) * float32(1 / rescale) when fused, then (x - mean) / std.
      const float f = do_rescale ? static_cast<float>(1.0 / rescale) : 1.0f;
      return (x - static_cast<float>(mean[c]) * f) / (static_cast<float>(std[c]) * f);
    }
    return do_rescale ? x * static_cast<float>(rescale) : x;
  }
  // The uint8 sample behind a normalised value (checks it is one).
  int Invert(float v, int c) const {
    const double u = static_cast<double>(v) * (std[c] / rescale) + mean[c] / rescale;
    const int r = static_cast<int>(std::lround(u));
    EXPECT_NEAR(u, r, 1e-3);
    return r;
  }
};

// Expected values under `to` for reference values `ref` ([tiles, 3, n, n]) produced under `from`.
std::vector<float> Renormalise(const std::vector<float>& ref, int64_t plane, const Norm& from,
                               const Norm& to) {
  std::vector<float> out(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    const int c = static_cast<int>((i / static_cast<size_t>(plane)) % 3);
    out[i] = to.Apply(from.Invert(ref[i], c), c);
  }
  return out;
}

Norm FromSettings(const ImageProcessorSettings& s) {
  return {s.do_rescale, s.do_normalize, s.rescale_factor, s.image_mean, s.image_std};
}

void ExpectError(const std::function<void()>& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ProcessorOptions, SettingsAreReadable) {
  for (const auto& f : Models()) {
    const Json cfg = ReadJsonFile(f.model_dir + "/processor_config.json");
    const ImageProcessorSettings s = f.proc->image_processor();
    const Json& ip = cfg.at("image_processor");
    EXPECT_EQ(s.tile_size, ip.at("tile_size").get<int>());
    EXPECT_EQ(s.max_num_tiles, ip.at("max_num_tiles").get<int>());
    EXPECT_EQ(s.vision_input_type, ip.at("vision_input_type").get<std::string>());
    EXPECT_EQ(s.rescale_factor, ip.at("rescale_factor").get<double>());
    EXPECT_EQ(s.resample, ip.at("resample").get<int>());
    const VideoProcessorSettings v = f.proc->video_processor();
    EXPECT_EQ(v.size.height, cfg.at("video_processor").at("size").at("height").get<int>());
    EXPECT_EQ(f.proc->patch_size(), cfg.at("patch_size").get<int64_t>());
    EXPECT_EQ(f.proc->pooling_ratio(), cfg.at("pooling_ratio").get<int64_t>());
  }
}

// Rescale / normalise options, vision_input_type and ignored options, on every fixture image.
TEST(ProcessorOptions, ImageOptionsMatchTheReference) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  int checked = 0;
  for (const auto& f : models) {
    const std::string base = test::FixturesDir() + "/image_processor/" + f.name;
    const Json meta = ReadJsonFile(base + ".json");
    const SafetensorsFile st(base + ".safetensors");
    const ImageProcessorSettings s = f.proc->image_processor();
    const Norm ref_norm = FromSettings(s);
    const int T = s.tile_size;
    for (const auto& [file, entry] : meta.items()) {
      std::string key = file;
      for (char& ch : key)
        if (ch == '.') ch = '_';
      if (!entry.is_object() || !st.Has(key + ".rgb.sub")) continue;
      const int stride = entry.value("subsample_stride", 1);
      const int n = (T + stride - 1) / stride;
      const std::vector<float> ref = st.Get(key + ".rgb.sub").ToF32();
      const int64_t tiles = static_cast<int64_t>(ref.size()) / (3 * n * n);
      const Conversation conv = WithImage(test::FixturesDir() + "/inputs/" + file);
      auto run = [&](const MediaOptions& o) {
        const ProcessorOutputs out = f.proc->Process({conv}, o);
        EXPECT_EQ(out.len, f.proc->CountTokens(conv, o)) << file;
        EXPECT_EQ(out.image_tile_size, T);
        return Sub(out.pixel_values, out.image_tiles, T, stride);
      };
      // Defaults reproduce the reference.
      ASSERT_EQ(run({}), ref) << f.name << " " << file;
      // Rescale / normalise variants.
      struct Variant {
        const char* name;
        Norm norm;
      };
      const Variant variants[] = {
          {"do_normalize=false", {true, false, s.rescale_factor, s.image_mean, s.image_std}},
          {"do_rescale=false do_normalize=false", {false, false, 1, s.image_mean, s.image_std}},
          {"do_rescale=false mean/std", {false, true, 1, {0.25, 0.5, 0.75}, {0.5, 0.25, 0.125}}},
          {"rescale_factor=1/128 mean/std", {true, true, 1.0 / 128, {0.25, 0.5, 1}, {0.5, 2, 4}}},
      };
      for (const Variant& v : variants) {
        MediaOptions o;
        o.do_rescale = v.norm.do_rescale;
        o.do_normalize = v.norm.do_normalize;
        o.rescale_factor = v.norm.rescale;
        o.image_mean = v.norm.mean;
        o.image_std = v.norm.std;
        EXPECT_EQ(run(o), Renormalise(ref, static_cast<int64_t>(n) * n, ref_norm, v.norm))
            << f.name << " " << file << " " << v.name;
      }
      // vision_input_type other than thumb+tile: the thumbnail alone.
      MediaOptions vanilla;
      vanilla.vision_input_type = "vanilla";
      const std::vector<float> thumb(ref.begin(), ref.begin() + 3 * n * n);
      EXPECT_EQ(run(vanilla), thumb) << f.name << " " << file;
      // Options the reference's image processor accepts and ignores.
      MediaOptions ignored;
      ignored.do_convert_rgb = false;
      ignored.do_center_crop = true;
      ignored.crop_size = PixelSize{7, 9};
      ignored.do_pad = true;
      ignored.size = PixelSize{30, 30};
      ignored.resample = 3;
      ignored.do_resize = true;
      EXPECT_EQ(run(ignored), ref) << f.name << " " << file;
      (void)tiles;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

// tile_size + max_num_tiles overrides reproduce the fixtures of other processor configs (the
// tiny fixtures have other tile sizes and tile limits).
TEST(ProcessorOptions, TileSizeAndMaxTilesReproduceOtherConfigs) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  const auto& f = models[0];
  const ImageProcessorSettings s = f.proc->image_processor();
  const std::string root = test::FixturesDir() + "/image_processor/";
  const Conversation text_only = {{"user", {ContentPart::Text("Describe.")}}};
  int checked = 0;
  for (const auto& file : test::ListDir(root, false)) {
    if (file.size() < 5 || file.substr(file.size() - 5) != ".json") continue;
    const Json meta = ReadJsonFile(root + file);
    const SafetensorsFile st(root + file.substr(0, file.size() - 5) + ".safetensors");
    int T2 = 0;
    std::vector<std::pair<std::string, int64_t>> images;  // file, reference tile count
    for (const auto& [img, entry] : meta.items()) {
      if (!entry.is_object() || !entry.contains("rgb_pixel_values_shape")) continue;
      T2 = entry["rgb_pixel_values_shape"][4].get<int>();
      images.push_back({img, entry["rgb_pixel_values_shape"][1].get<int64_t>()});
    }
    if (T2 == 0 || T2 / f.proc->patch_size() / f.proc->pooling_ratio() == 0) continue;
    // The tile limit that gives the reference's tile counts (the tile size is in the shapes).
    const int64_t side = T2 / f.proc->patch_size() / f.proc->pooling_ratio();
    const int64_t base = f.proc->CountTokens(text_only);
    MediaOptions o;
    o.tile_size = T2;
    int found = 0;
    for (int m = 1; m <= 64 && !found; ++m) {
      o.max_num_tiles = m;
      bool all = true;
      for (const auto& [img, want] : images) {
        const int64_t tokens =
            f.proc->CountTokens(WithImage(test::FixturesDir() + "/inputs/" + img), o) - base;
        if (tokens != want * side * side) {
          all = false;
          break;
        }
      }
      if (all) found = m;
    }
    ASSERT_GT(found, 0) << file << ": no max_num_tiles reproduces the reference tile counts";
    o.max_num_tiles = found;
    for (const auto& [img, want] : images) {
      std::string key = img;
      for (char& ch : key)
        if (ch == '.') ch = '_';
      const int stride = meta[img].value("subsample_stride", 1);
      const ProcessorOutputs out =
          f.proc->Process({WithImage(test::FixturesDir() + "/inputs/" + img)}, o);
      ASSERT_EQ(out.image_tiles, want);
      EXPECT_EQ(out.image_tile_size, T2);
      EXPECT_EQ(Sub(out.pixel_values, out.image_tiles, T2, stride),
                st.Get(key + ".rgb.sub").ToF32())
          << file << " " << img << " tile_size " << T2 << " max_num_tiles " << found;
      ++checked;
    }
    std::printf("[options] %s: tile_size %d max_num_tiles %d reproduce %zu images\n", file.c_str(),
                T2, found, images.size());
  }
  EXPECT_GT(checked, 0);
  (void)s;
}

// 24-bit bottom-up BMP of a w x h RGB buffer.
void WriteBmp(const std::string& path, int w, int h, const std::vector<uint8_t>& rgb) {
  const int row = (w * 3 + 3) / 4 * 4;
  std::string b(54 + static_cast<size_t>(row) * h, '\0');
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); };
  auto put16 = [&](size_t at, uint16_t v) { std::memcpy(&b[at], &v, 2); };
  b[0] = 'B';
  b[1] = 'M';
  put32(2, static_cast<uint32_t>(b.size()));
  put32(10, 54);
  put32(14, 40);
  put32(18, static_cast<uint32_t>(w));
  put32(22, static_cast<uint32_t>(h));
  put16(26, 1);
  put16(28, 24);
  put32(34, static_cast<uint32_t>(row * h));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        b[54 + static_cast<size_t>(h - 1 - y) * row + x * 3 + (2 - c)] =
            static_cast<char>(rgb[(static_cast<size_t>(y) * w + x) * 3 + c]);
  test::WriteFile(path, b);
}

// uint8 frames [F, H, W, 3] as .npy.
void WriteNpy(const std::string& path, int frames, int h, int w, const std::vector<uint8_t>& px) {
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (" +
                       std::to_string(frames) + ", " + std::to_string(h) + ", " +
                       std::to_string(w) + ", 3), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  const auto len = static_cast<uint16_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(px.data()), px.size());
  test::WriteFile(path, out);
}

std::vector<uint8_t> Pattern(size_t n, unsigned seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 37 + seed * 11 + i / 7) & 0xff);
  return v;
}

// do_resize=false: the reference passes the image through unresized (one tile); only tile-sized
// squares can reach the vision tower.
TEST(ProcessorOptions, DoResizeFalse) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  for (const auto& f : models) {
    const ImageProcessorSettings s = f.proc->image_processor();
    const int T = s.tile_size;
    const std::string dir = test::MakeTempDir();
    const std::vector<uint8_t> rgb = Pattern(static_cast<size_t>(T) * T * 3, 1);
    WriteBmp(dir + "/t.bmp", T, T, rgb);
    MediaOptions o;
    o.do_resize = false;
    const ProcessorOutputs out = f.proc->Process({WithImage(dir + "/t.bmp")}, o);
    ASSERT_EQ(out.image_tiles, 1);
    EXPECT_EQ(out.len, f.proc->CountTokens(WithImage(dir + "/t.bmp"), o));
    const Norm norm = FromSettings(s);
    std::vector<float> want(static_cast<size_t>(3) * T * T);
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < T * T; ++i) want[c * T * T + i] = norm.Apply(rgb[i * 3 + c], c);
    EXPECT_EQ(out.pixel_values, want) << f.name;
    WriteBmp(dir + "/small.bmp", T - 1, T, Pattern(static_cast<size_t>(T - 1) * T * 3, 2));
    ExpectError([&] { f.proc->Process({WithImage(dir + "/small.bmp")}, o); },
                ErrorCode::kUnsupported, "do_resize=false");

    // Videos: frames of the frame size pass through.
    const VideoProcessorSettings vs = f.proc->video_processor();
    const int V = vs.size.height;
    const std::vector<uint8_t> px = Pattern(static_cast<size_t>(2) * V * V * 3, 3);
    WriteNpy(dir + "/v.npy", 2, V, V, px);
    const ProcessorOutputs vo = f.proc->Process({WithVideo(dir + "/v.npy")}, o);
    ASSERT_EQ(vo.video_frames, 2);
    std::vector<float> vwant(static_cast<size_t>(2) * 3 * V * V);
    const Norm vnorm{vs.do_rescale, vs.do_normalize, vs.rescale_factor, vs.image_mean,
                     vs.image_std};
    for (int t = 0; t < 2; ++t)
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < V * V; ++i)
          vwant[(static_cast<size_t>(t) * 3 + c) * V * V + i] =
              vnorm.Apply(px[(static_cast<size_t>(t) * V * V + i) * 3 + c], c);
    EXPECT_EQ(vo.pixel_values_videos, vwant) << f.name;
    WriteNpy(dir + "/w.npy", 1, V, V + 2, Pattern(static_cast<size_t>(V) * (V + 2) * 3, 4));
    ExpectError([&] { f.proc->Process({WithVideo(dir + "/w.npy")}, o); }, ErrorCode::kUnsupported,
                "do_resize=false");
  }
}

// Video options: frame size, sampling, rescale/normalise, centre crop, against the video fixtures.
TEST(ProcessorOptions, VideoOptionsMatchTheReference) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  const std::string root = test::FixturesDir() + "/video_processor/";
  int checked = 0;
  for (const auto& f : models) {
    const VideoProcessorSettings vs = f.proc->video_processor();
    for (const auto& file : test::ListDir(root, false)) {
      if (file.size() < 5 || file.substr(file.size() - 5) != ".json" || file == "sampling.json")
        continue;
      const Json meta = ReadJsonFile(root + file);
      if (!meta.contains("video") || !meta.contains("all_frames")) continue;
      const SafetensorsFile st(root + file.substr(0, file.size() - 5) + ".safetensors");
      const Conversation conv =
          WithVideo(test::FixturesDir() + "/inputs/" + meta["video"].get<std::string>());
      for (const std::string variant : {"all_frames", "sampled8"}) {
        if (!meta.contains(variant)) continue;
        const Json& v = meta[variant];
        const int S = v["shape"][3].get<int>(), stride = v.value("subsample_stride", 1);
        MediaOptions o;
        o.size = PixelSize{S, S};  // another processor's frame size
        if (v.contains("frame_indices"))
          o.num_frames = static_cast<int64_t>(v["frame_indices"].size());
        const ProcessorOutputs out = f.proc->Process({conv}, o);
        EXPECT_EQ(out.len, f.proc->CountTokens(conv, o));
        EXPECT_EQ(out.video_tile_size, S);
        const std::vector<float> ref = st.Get(variant + ".sub").ToF32();
        const auto got = Sub(out.pixel_values_videos, out.video_frames, S, stride);
        EXPECT_EQ(got, ref) << f.name << " size " << S << " " << file << " " << variant;
        if (variant == "all_frames") {
          // Rescale / normalise variants derived from the reference values.
          const Norm from{vs.do_rescale, vs.do_normalize, vs.rescale_factor, vs.image_mean,
                          vs.image_std};
          const Norm to{false, true, 1, {0.25, 0.5, 0.75}, {0.5, 0.25, 0.125}};
          MediaOptions n = o;
          n.do_rescale = false;
          n.image_mean = to.mean;
          n.image_std = to.std;
          const auto r = f.proc->Process({conv}, n);
          const int sub = (S + stride - 1) / stride;
          EXPECT_EQ(Sub(r.pixel_values_videos, r.video_frames, S, stride),
                    Renormalise(ref, static_cast<int64_t>(sub) * sub, from, to))
              << file;
          // A centre crop to the whole frame is a no-op; do_pad and do_convert_rgb are ignored.
          MediaOptions c = o;
          c.do_center_crop = true;
          c.crop_size = PixelSize{S, S};
          c.do_pad = true;
          c.do_convert_rgb = false;
          EXPECT_EQ(
              Sub(f.proc->Process({conv}, c).pixel_values_videos, out.video_frames, S, stride),
              ref);
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(ProcessorOptions, BadValuesAreClearErrors) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  const auto& f = models[0];
  const std::string image =
      test::FixturesDir() + "/inputs/" +
      ReadJsonFile(test::FixturesDir() + "/image_processor/" + f.name + ".json").begin().key();
  const Conversation conv = WithImage(image);
  auto with = [&](const std::function<void(MediaOptions&)>& edit) {
    MediaOptions o;
    edit(o);
    return o;
  };
  ExpectError([&] { f.proc->Process({conv}, with([](MediaOptions& o) { o.resample = 2; })); },
              ErrorCode::kUnsupported, "resample");
  ExpectError([&] { f.proc->CountTokens(conv, with([](MediaOptions& o) { o.resample = 0; })); },
              ErrorCode::kUnsupported, "resample");
  ExpectError([&] { f.proc->Process({conv}, with([](MediaOptions& o) { o.max_num_tiles = 0; })); },
              ErrorCode::kInvalidArgument, "max_num_tiles");
  ExpectError([&] { f.proc->Process({conv}, with([](MediaOptions& o) { o.tile_size = 0; })); },
              ErrorCode::kInvalidArgument, "tile_size");
  ExpectError(
      [&] {
        f.proc->Process({conv}, with([](MediaOptions& o) { o.image_std = {{1, 0, 1}}; }));
      },
      ErrorCode::kInvalidArgument, "image_std");
  ExpectError(
      [&] { f.proc->Process({conv}, with([](MediaOptions& o) { o.rescale_factor = -1; })); },
      ErrorCode::kInvalidArgument, "rescale_factor");
  const std::string video =
      test::FixturesDir() + "/inputs/" +
      ReadJsonFile(test::FixturesDir() + "/video_processor/" + f.name + ".json")["video"]
          .get<std::string>();
  ExpectError(
      [&] {
        f.proc->Process({WithVideo(video)}, with([](MediaOptions& o) {
                          o.size = PixelSize{30, 40};
                        }));
      },
      ErrorCode::kUnsupported, "square");
  ExpectError(
      [&] {
        f.proc->Process({WithVideo(video)}, with([](MediaOptions& o) { o.do_center_crop = true; }));
      },
      ErrorCode::kInvalidArgument, "crop_size");
  ExpectError(
      [&] {
        f.proc->Process({WithVideo(video)}, with([](MediaOptions& o) {
                          o.do_center_crop = true;
                          o.crop_size = PixelSize{10, 10};
                        }));
      },
      ErrorCode::kUnsupported, "crop");
}

}  // namespace
}  // namespace plm
