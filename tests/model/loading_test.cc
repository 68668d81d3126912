// Loading Hugging Face checkpoints: both config.json forms, sharded and single-file weights,
// bf16/f16/f32, and errors that name the problem for every kind of broken checkpoint.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "core/json.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "model/f32_weights.h"
#include "plm/error.h"
#include "plm/model.h"
#include "support/test_support.h"

namespace plm {
namespace {

namespace fs = std::filesystem;
using Tensors = std::map<std::string, TensorData>;

Tensors ReadAll(const std::string& path) {
  SafetensorsFile f(path);
  Tensors t;
  for (const auto& [name, v] : f.tensors()) {
    TensorData d;
    d.dtype = v.dtype;
    d.shape = v.shape;
    d.bytes.assign(v.data, v.data + v.nbytes);
    t[name] = std::move(d);
  }
  return t;
}

// A copy of `src` model folder in a temp dir, with the config and weights passed through edits.
std::string CopyModel(const std::string& src, const std::function<void(Json&)>& edit_config,
                      const std::function<void(Tensors&)>& edit_weights) {
  const std::string dir = test::MakeTempDir();
  for (const auto& f : test::ListDir(src, false)) {
    if (f == "config.json" || f == "model.safetensors") continue;
    fs::copy_file(src + "/" + f, dir + "/" + f);
  }
  Json cfg = ReadJsonFile(src + "/config.json");
  if (edit_config) edit_config(cfg);
  test::WriteFile(dir + "/config.json", cfg.dump(2));
  Tensors t = ReadAll(src + "/model.safetensors");
  if (edit_weights) edit_weights(t);
  if (!t.empty()) WriteSafetensors(dir + "/model.safetensors", t);
  return dir;
}

std::vector<float> LastLogits(const std::string& dir) {
  auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir);
  ForwardInputs in;
  in.input_ids = {128000, 128006, 882, 128007, 271, 9906, 1917, 128009};
  in.len = static_cast<int64_t>(in.input_ids.size());
  in.logits_to_keep = 1;
  return model->Forward(in).logits.data;
}

void ExpectLoadError(const std::string& dir, ErrorCode code,
                     const std::vector<std::string>& needles) {
  try {
    PerceptionLMForConditionalGeneration::FromPretrained(dir);
    ADD_FAILURE() << "expected a load error mentioning " << needles[0];
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code)) << e.what();
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(Loading, FixtureModelsExist) {
  ASSERT_FALSE(test::FixtureModels().empty()) << "no models in " << test::FixturesDir();
}

// transformers 4.x writes rope_theta + rope_scaling and torch_dtype; both forms must load the same.
TEST(Loading, Transformers4ConfigFormGivesSameLogits) {
  for (const auto& src : test::FixtureModels()) {
    const auto want = LastLogits(src);
    const std::string dir = CopyModel(
        src,
        [](Json& c) {
          Json& tc = c["text_config"];
          Json rp = tc["rope_parameters"];
          tc.erase("rope_parameters");
          tc["rope_theta"] = rp["rope_theta"];
          rp.erase("rope_theta");
          if (rp["rope_type"] == "default") {
            tc["rope_scaling"] = nullptr;
          } else {
            rp["type"] = rp["rope_type"];  // the older key spelling
            rp.erase("rope_type");
            tc["rope_scaling"] = rp;
          }
          c["torch_dtype"] = c["dtype"];
          c.erase("dtype");
        },
        nullptr);
    EXPECT_EQ(LastLogits(dir), want) << src;
  }
}

TEST(Loading, ShardedCheckpointGivesSameLogits) {
  for (const auto& src : test::FixtureModels()) {
    const auto want = LastLogits(src);
    const std::string dir = CopyModel(src, nullptr, [](Tensors& t) { t.clear(); });
    Tensors all = ReadAll(src + "/model.safetensors");
    Tensors a, b;
    Json map = Json::object();
    int i = 0;
    for (auto& [name, d] : all) {
      const bool first = (i++ % 2) == 0;
      map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
      (first ? a : b)[name] = std::move(d);
    }
    WriteSafetensors(dir + "/model-00001-of-00002.safetensors", a);
    WriteSafetensors(dir + "/model-00002-of-00002.safetensors", b);
    test::WriteFile(dir + "/model.safetensors.index.json",
                    Json{{"metadata", Json::object()}, {"weight_map", map}}.dump());
    EXPECT_EQ(LastLogits(dir), want) << src;
  }
}

TEST(Loading, Float32AndFloat16Weights) {
  for (const auto& src : test::FixtureModels()) {
    const auto want = LastLogits(src);
    for (DType to : {DType::kF32, DType::kF16}) {
      const std::string dir = CopyModel(src, nullptr, [to](Tensors& t) {
        for (auto& [name, d] : t) {
          if (d.dtype != DType::kBF16) continue;
          const size_t n = d.bytes.size() / 2;
          std::vector<uint8_t> out(n * DTypeSize(to));
          for (size_t i = 0; i < n; ++i) {
            uint16_t h;
            std::memcpy(&h, d.bytes.data() + 2 * i, 2);
            const float f = Bf16ToF32(h);
            if (to == DType::kF32) {
              std::memcpy(out.data() + 4 * i, &f, 4);
            } else {
              const uint16_t g = F32ToF16(f);
              std::memcpy(out.data() + 2 * i, &g, 2);
            }
          }
          d.dtype = to;
          d.bytes = std::move(out);
        }
      });
      const auto got = LastLogits(dir);
      ASSERT_EQ(got.size(), want.size());
      // f32 holds bf16 exactly; f16 rounds a few weights (bf16 has more exponent range).
      const double tol = to == DType::kF32 ? 0.0 : 5e-2;
      EXPECT_LE(test::Compare(got.data(), want.data(), got.size()).max_abs, tol)
          << src << " " << DTypeName(to);
    }
  }
}

TEST(Loading, MissingTensorIsNamed) {
  const std::string src = test::FixtureModels().at(0);
  const std::string dir = CopyModel(
      src, nullptr, [](Tensors& t) { t.erase("model.multi_modal_projector.linear_2.bias"); });
  ExpectLoadError(dir, ErrorCode::kNotFound, {"model.multi_modal_projector.linear_2.bias"});
}

TEST(Loading, UnexpectedTensorIsNamed) {
  const std::string src = test::FixtureModels().at(0);
  const std::string dir = CopyModel(src, nullptr, [](Tensors& t) {
    TensorData d;
    d.dtype = DType::kBF16;
    d.shape = {4};
    d.bytes.assign(8, 0);
    t["model.vision_tower.timm_model.head.weight"] = d;
  });
  ExpectLoadError(dir, ErrorCode::kCorrupt,
                  {"unexpected", "model.vision_tower.timm_model.head.weight"});
}

TEST(Loading, ShapeMismatchNamesBothShapes) {
  const std::string src = test::FixtureModels().at(0);
  const Json cfg = ReadJsonFile(src + "/config.json");
  const int64_t hidden = cfg["text_config"]["hidden_size"].get<int64_t>();
  const std::string dir = CopyModel(src, nullptr, [&](Tensors& t) {
    auto& d = t.at("model.language_model.norm.weight");
    d.shape = {hidden / 2, 2};
  });
  std::string found = "[", expected = "[";
  found += std::to_string(hidden / 2);
  found += ", 2]";
  expected += std::to_string(hidden);
  expected += "]";
  ExpectLoadError(dir, ErrorCode::kCorrupt, {"model.language_model.norm.weight", found, expected});
}

TEST(Loading, WrongConfigDepthIsCaught) {
  const std::string src = test::FixtureModels().at(0);
  const std::string dir = CopyModel(
      src,
      [](Json& c) {
        c["text_config"]["num_hidden_layers"] =
            c["text_config"]["num_hidden_layers"].get<int>() + 1;
      },
      nullptr);
  ExpectLoadError(dir, ErrorCode::kNotFound, {"missing tensor", "layers."});
}

TEST(Loading, UnsupportedArchitectureAndRope) {
  const std::string src = test::FixtureModels().at(0);
  ExpectLoadError(
      CopyModel(
          src, [](Json& c) { c["vision_config"]["architecture"] = "vit_so400m_patch14"; }, nullptr),
      ErrorCode::kUnsupported, {"vit_so400m_patch14"});
  ExpectLoadError(
      CopyModel(
          src, [](Json& c) { c["text_config"]["rope_parameters"]["rope_type"] = "yarn"; }, nullptr),
      ErrorCode::kUnsupported, {"yarn"});
  ExpectLoadError(CopyModel(
                      src, [](Json& c) { c["model_type"] = "llava"; }, nullptr),
                  ErrorCode::kUnsupported, {"llava"});
  ExpectLoadError(
      CopyModel(
          src, [](Json& c) { c["architectures"] = {"LlavaForConditionalGeneration"}; }, nullptr),
      ErrorCode::kUnsupported, {"LlavaForConditionalGeneration"});
  ExpectLoadError(CopyModel(
                      src, [](Json& c) { c["text_config"]["model_type"] = "mistral"; }, nullptr),
                  ErrorCode::kUnsupported, {"mistral"});
}

TEST(Loading, BadConfigValues) {
  const std::string src = test::FixtureModels().at(0);
  ExpectLoadError(CopyModel(
                      src, [](Json& c) { c["text_config"].erase("hidden_size"); }, nullptr),
                  ErrorCode::kCorrupt, {"hidden_size"});
  ExpectLoadError(CopyModel(
                      src, [](Json& c) { c["text_config"]["hidden_size"] = "big"; }, nullptr),
                  ErrorCode::kCorrupt, {"hidden_size"});
  ExpectLoadError(CopyModel(
                      src, [](Json& c) { c["text_config"]["num_key_value_heads"] = 3; }, nullptr),
                  ErrorCode::kCorrupt, {"num_key_value_heads"});
  ExpectLoadError(CopyModel(
                      src, [](Json& c) { c.erase("vision_config"); }, nullptr),
                  ErrorCode::kCorrupt, {"vision_config"});
}

TEST(Loading, UnreadableConfigJson) {
  const std::string src = test::FixtureModels().at(0);
  const std::string dir = CopyModel(src, nullptr, nullptr);
  test::WriteFile(dir + "/config.json", "{\"model_type\": \"perception_lm\", ");
  ExpectLoadError(dir, ErrorCode::kCorrupt, {"config.json", "invalid JSON"});
}

TEST(Loading, MissingFiles) {
  ExpectLoadError(test::MakeTempDir(), ErrorCode::kNotFound, {"config.json"});
  const std::string dir =
      CopyModel(test::FixtureModels().at(0), nullptr, [](Tensors& t) { t.clear(); });
  fs::remove(dir + "/model.safetensors");
  ExpectLoadError(dir, ErrorCode::kNotFound, {"model.safetensors"});
}

TEST(Loading, TruncatedWeightsFile) {
  const std::string src = test::FixtureModels().at(0);
  const std::string dir = CopyModel(src, nullptr, nullptr);
  const std::string w = dir + "/model.safetensors";
  const auto size = fs::file_size(w);
  fs::resize_file(w, size / 2);
  ExpectLoadError(dir, ErrorCode::kCorrupt, {"model.safetensors", "truncated"});
}

TEST(Loading, ShardIndexProblems) {
  const std::string src = test::FixtureModels().at(0);
  const std::string dir = CopyModel(src, nullptr, nullptr);
  test::WriteFile(dir + "/model.safetensors.index.json",
                  R"({"weight_map": {"x": "../../etc/passwd"}})");
  ExpectLoadError(dir, ErrorCode::kCorrupt, {"invalid shard file name"});
  test::WriteFile(dir + "/model.safetensors.index.json",
                  R"({"weight_map": {"x": "model.safetensors"}})");
  ExpectLoadError(dir, ErrorCode::kCorrupt, {"\"x\"", "does not contain"});
  test::WriteFile(dir + "/model.safetensors.index.json",
                  R"({"weight_map": {"x": "model-00009.safetensors"}})");
  ExpectLoadError(dir, ErrorCode::kNotFound, {"model-00009.safetensors"});
  test::WriteFile(dir + "/model.safetensors.index.json", R"({"metadata": {}})");
  ExpectLoadError(dir, ErrorCode::kCorrupt, {"weight_map"});
}

TEST(Loading, ConfigRoundTrip) {
  for (const auto& src : test::FixtureModels()) {
    const auto cfg = PerceptionLMConfig::FromFile(src + "/config.json");
    const auto again = PerceptionLMConfig::FromJsonString(cfg.ToJsonString(), "round trip");
    EXPECT_EQ(again.ToJsonString(), cfg.ToJsonString());
    EXPECT_EQ(again.TokensPerTile(), cfg.TokensPerTile());
  }
}

}  // namespace
}  // namespace plm

namespace plm {
namespace {

// Float32 checkpoints are used in place from the mapping; other dtypes are converted once.
TEST(Loading, Float32WeightsAreNotCopied) {
  const std::string path = test::MakeTempDir() + "/w.safetensors";
  TensorData f32, bf16;
  f32.dtype = DType::kF32;
  f32.shape = {2};
  f32.bytes.resize(8);
  const float vals[2] = {1.5f, -2.0f};
  std::memcpy(f32.bytes.data(), vals, 8);
  bf16.dtype = DType::kBF16;
  bf16.shape = {2};
  const uint16_t hv[2] = {F32ToBf16(1.5f), F32ToBf16(-2.0f)};
  bf16.bytes.resize(4);
  std::memcpy(bf16.bytes.data(), hv, 4);
  WriteSafetensors(path, {{"a", f32}, {"b", bf16}});
  SafetensorsFile f(path);
  F32Weights a(f.Get("a")), b(f.Get("b"));
  EXPECT_TRUE(a.borrowed());
  EXPECT_EQ(a.data(), reinterpret_cast<const float*>(f.Get("a").data));
  EXPECT_FALSE(b.borrowed());
  EXPECT_EQ(a[1], -2.0f);
  EXPECT_EQ(b[0], 1.5f);
  F32Weights moved = std::move(a);
  EXPECT_TRUE(moved.borrowed());
  EXPECT_EQ(moved[0], 1.5f);
}

}  // namespace
}  // namespace plm
