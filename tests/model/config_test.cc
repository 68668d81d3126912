// PerceptionLMConfig: every field of the reference config and its sub-configs is readable,
// settable and survives save + load; every fixture config.json round-trips (the saved file holds
// every key of the original with the same value and re-loads to an equal config).
#include <gtest/gtest.h>

#include <functional>

#include "core/json.h"
#include "core/mapped_file.h"
#include "plm/config.h"
#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

// Every config.json under the fixtures (models and shape-only configs) and of the benchmarks'
// real shapes (bench/configs).
std::vector<std::string> FixtureConfigs() {
  std::vector<std::string> out;
  const std::string root = test::FixturesDir();
  for (const std::string& dir :
       {root + "/models", root + "/configs", std::string(PLM_SOURCE_DIR) + "/bench/configs"})
    for (const auto& d : test::ListDir(dir, true))
      if (test::PathExists(dir + "/" + d + "/config.json"))
        out.push_back(dir + "/" + d + "/config.json");
  return out;
}

// Each key path of `want` exists in `got` with an equal value (numbers compared as numbers).
void ExpectContains(const Json& got, const Json& want, const std::string& path) {
  if (want.is_object()) {
    ASSERT_TRUE(got.is_object()) << path;
    for (auto it = want.begin(); it != want.end(); ++it) {
      ASSERT_TRUE(got.contains(it.key())) << "saved config lacks " << path << "." << it.key();
      ExpectContains(got.at(it.key()), *it, path + "." + it.key());
    }
  } else if (want.is_number() && got.is_number()) {
    EXPECT_EQ(got.get<double>(), want.get<double>()) << path;
  } else {
    EXPECT_EQ(got, want) << path;
  }
}

TEST(Config, FixtureFilesRoundTrip) {
  const auto files = FixtureConfigs();
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    const PerceptionLMConfig cfg = PerceptionLMConfig::FromFile(f);
    const std::string saved = cfg.ToJsonString();
    ExpectContains(ParseJson(saved, "saved"), ReadJsonFile(f), f);
    const PerceptionLMConfig again = PerceptionLMConfig::FromJsonString(saved, "saved " + f);
    EXPECT_EQ(again, cfg) << f;
    EXPECT_EQ(again.ToJsonString(), saved) << f;
    // Through a file, as save_pretrained + from_pretrained.
    const std::string path = test::MakeTempDir() + "/config.json";
    cfg.SaveToFile(path);
    EXPECT_EQ(PerceptionLMConfig::FromFile(path), cfg) << f;
  }
}

// The transformers 4.x form (rope_theta + rope_scaling, torch_dtype) loads to the same config as
// the 5.x form and is saved in the 5.x form.
TEST(Config, Transformers4FormIsNormalised) {
  for (const auto& f : FixtureConfigs()) {
    Json j = ReadJsonFile(f);
    const PerceptionLMConfig v5 = PerceptionLMConfig::FromFile(f);
    Json& tc = j["text_config"];
    Json rope = tc["rope_parameters"];
    tc.erase("rope_parameters");
    tc["rope_theta"] = rope["rope_theta"];
    rope.erase("rope_theta");
    if (rope["rope_type"] == "default") {
      tc["rope_scaling"] = nullptr;
    } else {
      tc["rope_scaling"] = rope;
    }
    if (j.contains("dtype")) {
      j["torch_dtype"] = j["dtype"];
      j.erase("dtype");
    }
    const PerceptionLMConfig v4 = PerceptionLMConfig::FromJsonString(j.dump(), f + " (4.x form)");
    EXPECT_EQ(v4.text.rope, v5.text.rope) << f;
    EXPECT_EQ(v4.dtype, v5.dtype) << f;
    EXPECT_EQ(v4, v5) << f;
    const Json saved = ParseJson(v4.ToJsonString(), "saved");
    EXPECT_TRUE(saved["text_config"].contains("rope_parameters")) << f;
    EXPECT_FALSE(saved.contains("torch_dtype")) << f;
  }
}

// Sets every field to a value different from what the fixture has, saves, loads, compares.
TEST(Config, EveryFieldIsSettableAndSaved) {
  const auto files = FixtureConfigs();
  ASSERT_FALSE(files.empty());
  PerceptionLMConfig c = PerceptionLMConfig::FromFile(files[0]);
  // Top level.
  c.architectures = {"PerceptionLMModel"};
  c.dtype = "float32";
  c.image_token_id = 128010;
  c.video_token_id = 128011;
  c.projector_pooling_ratio = c.projector_pooling_ratio == 1 ? 2 : 1;
  c.vision.class_token = true;
  c.vision_use_cls_token = !c.vision_use_cls_token;
  c.tie_word_embeddings = !c.tie_word_embeddings;
  c.extra["transformers_version"] = "\"9.9.9\"";
  c.extra["my_key"] = "{\"a\":[1,2]}";  // compact JSON, as loading stores it
  // text_config.
  TextConfig& t = c.text;
  t.vocab_size += 3;
  t.hidden_size = 96;
  t.intermediate_size += 5;
  t.num_hidden_layers += 1;
  t.num_attention_heads = 6;
  t.num_key_value_heads = 3;
  t.head_dim = 12;
  t.rms_norm_eps = 3e-6;
  t.max_position_embeddings = 777;
  t.tie_word_embeddings = !t.tie_word_embeddings;
  t.bos_token_id = 5;
  t.eos_token_ids = {6, 7, 8};
  t.pad_token_id = 9;
  t.initializer_range = 0.05;
  t.use_cache = false;
  t.pretraining_tp = 2;
  t.attention_dropout = 0.25;
  t.rope = {"llama3", 1234.5, 8.0, 2.0, 5.0, 4096};
  t.extra["custom_text_key"] = "\"x\"";
  // vision_config.
  VisionConfig& v = c.vision;
  v.architecture = v.architecture == "vit_pe_core_large_patch14_336"
                       ? "vit_pe_core_gigantic_patch14_448"
                       : "vit_pe_core_large_patch14_336";
  v.patch_size = 16;
  v.embed_dim = 96;
  v.depth = 3;
  v.num_heads = 6;
  v.mlp_ratio = 2.5;
  v.img_height = 128;
  v.img_width = 128;
  v.use_pre_transformer_norm = !v.use_pre_transformer_norm;
  v.use_post_transformer_norm = !v.use_post_transformer_norm;
  v.qkv_bias = !v.qkv_bias;
  v.init_values = 0.3;
  v.rope_temperature = 500.0;
  v.rope_grid_offset = 0.5;
  v.rope_grid_indexing = "ij";
  v.ref_feat_h = 4;
  v.ref_feat_w = 5;
  v.global_pool = "avg";
  v.initializer_range = 0.07;
  v.do_pooling = !v.do_pooling;
  v.num_classes = 5;
  v.label_names = {"a", "b", "c", "d", "e"};
  v.model_args_extra["drop_path_rate"] = "0.1";
  v.extra["pretrained_cfg"] = "{\"tag\":\"fb\"}";
  ASSERT_NO_THROW(c.Validate());
  const std::string path = test::MakeTempDir() + "/config.json";
  c.SaveToFile(path);
  const PerceptionLMConfig back = PerceptionLMConfig::FromFile(path);
  EXPECT_EQ(back, c);
  // Field by field, so a failure names the field.
  EXPECT_EQ(back.text, c.text);
  EXPECT_EQ(back.vision, c.vision);
  EXPECT_EQ(back.extra, c.extra);
  EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(back.vision.model_args_extra.at("drop_path_rate"), "0.1");
  EXPECT_EQ(back.TokensPerTile(), c.TokensPerTile());
}

TEST(Config, ValidateAndSaveRejectBadFields) {
  PerceptionLMConfig c = PerceptionLMConfig::FromFile(FixtureConfigs().at(0));
  auto expect_code = [&](const std::function<void(PerceptionLMConfig&)>& edit, ErrorCode code) {
    PerceptionLMConfig bad = c;
    edit(bad);
    try {
      bad.Validate();
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
    }
    EXPECT_THROW(bad.SaveToFile(test::MakeTempDir() + "/config.json"), Error);
  };
  expect_code([](PerceptionLMConfig& x) { x.text.num_key_value_heads = 3; }, ErrorCode::kCorrupt);
  expect_code([](PerceptionLMConfig& x) { x.text.rope.rope_type = "yarn"; },
              ErrorCode::kUnsupported);
  expect_code([](PerceptionLMConfig& x) { x.vision.architecture = "resnet50"; },
              ErrorCode::kUnsupported);
  expect_code([](PerceptionLMConfig& x) { x.vision.model_args_extra["swiglu_mlp"] = "true"; },
              ErrorCode::kUnsupported);
  expect_code([](PerceptionLMConfig& x) { x.projector_pooling_ratio = 0; }, ErrorCode::kCorrupt);
  expect_code([](PerceptionLMConfig& x) { x.image_token_id = x.text.vocab_size; },
              ErrorCode::kCorrupt);
  expect_code([](PerceptionLMConfig& x) { x.extra["k"] = "{not json"; }, ErrorCode::kCorrupt);
  // An extra key that is not JSON is caught when saving.
  PerceptionLMConfig bad = c;
  bad.extra["k"] = "{not json";
  EXPECT_THROW(bad.ToJsonString(), Error);
  // A folder that does not exist.
  EXPECT_THROW(c.SaveToFile("/no/such/dir/config.json"), Error);
}

}  // namespace
}  // namespace plm
