// The forward-pass options of the public API behave like the reference's keyword arguments:
// inputs_embeds vs input_ids, logits_to_keep, explicit logits positions, placeholder count checks.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "plm/error.h"
#include "plm/model.h"
#include "support/golden_inputs.h"
#include "support/test_support.h"

namespace plm {
namespace {

// BLAS kernels block differently for different row counts, so fewer rows round differently.
constexpr float kGemmNoise = 1e-5f;

struct Case {
  std::string model_dir, golden;
};

// Every golden case of every fixture model.
std::vector<Case> AllCases() {
  std::vector<Case> out;
  const std::string root = test::FixturesDir();
  for (const auto& m : test::ListDir(root + "/models", true)) {
    if (!test::PathExists(root + "/models/" + m + "/config.json")) continue;
    for (const auto& f : test::ListDir(root + "/goldens/" + m, false))
      if (f.size() > 12 && f.substr(f.size() - 12) == ".safetensors")
        out.push_back({root + "/models/" + m, root + "/goldens/" + m + "/" + f});
  }
  return out;
}

TEST(Api, InputsEmbedsLogitsToKeepAndPositions) {
  const auto cases = AllCases();
  ASSERT_FALSE(cases.empty());
  std::string last_dir;
  std::unique_ptr<PerceptionLMForConditionalGeneration> model;
  for (const auto& c : cases) {
    if (c.model_dir != last_dir) {
      model = PerceptionLMForConditionalGeneration::FromPretrained(c.model_dir);
      last_dir = c.model_dir;
    }
    SafetensorsFile g(c.golden);
    std::vector<float> pix, vid;
    ForwardInputs in = test::GoldenInputs(g, &pix, &vid);
    const int64_t V = model->config().text.vocab_size, L = in.len, B = in.batch;
    const ForwardOutputs full = model->Forward(in);

    // inputs_embeds: the merged embeddings of input_ids + media reproduce the same logits.
    ForwardOutputs scratch;
    Tensor embeds = model->GetInputEmbeddings(in, &scratch);
    ForwardInputs by_embeds = in;
    by_embeds.input_ids.clear();
    by_embeds.inputs_embeds = embeds.data;
    by_embeds.pixel_values = {};
    by_embeds.pixel_values_videos = {};
    const ForwardOutputs e = model->Forward(by_embeds);
    EXPECT_EQ(e.logits.data, full.logits.data) << c.golden;

    // inputs_embeds with placeholder rows + pixels: placeholders found by their embedding.
    if (in.pixel_values.tiles > 0 || in.pixel_values_videos.tiles > 0) {
      ForwardInputs raw = in;
      Tensor plain({B, L, model->config().text.hidden_size});
      ForwardInputs ids_only = in;
      ids_only.pixel_values = {};
      ids_only.pixel_values_videos = {};
      plain = model->GetInputEmbeddings(ids_only, nullptr);
      raw.input_ids.clear();
      raw.inputs_embeds = plain.data;
      const ForwardOutputs r = model->Forward(raw);
      EXPECT_EQ(r.logits.data, full.logits.data) << c.golden;
    }

    // logits_to_keep = n gives the last n rows of the full logits.
    ForwardInputs keep = in;
    keep.logits_to_keep = 3;
    const ForwardOutputs k = model->Forward(keep);
    ASSERT_EQ(k.logits.shape, (std::vector<int64_t>{B, 3, V}));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t v = 0; v < V; v += 97)
          ASSERT_NEAR(k.logits.ptr()[(b * 3 + i) * V + v],
                      full.logits.ptr()[(b * L + L - 3 + i) * V + v], kGemmNoise);

    // An explicit list of positions.
    ForwardInputs pos = in;
    pos.logits_positions = {0, L / 2, L - 1};
    const ForwardOutputs p = model->Forward(pos);
    for (int64_t b = 0; b < B; ++b)
      for (size_t i = 0; i < 3; ++i)
        for (int64_t v = 0; v < V; v += 97)
          ASSERT_NEAR(p.logits.ptr()[(b * 3 + static_cast<int64_t>(i)) * V + v],
                      full.logits.ptr()[(b * L + pos.logits_positions[i]) * V + v], kGemmNoise);
  }
}

TEST(Api, PlaceholderCountMismatchNamesBothCounts) {
  const auto cases = AllCases();
  for (const auto& c : cases) {
    SafetensorsFile g(c.golden);
    if (!g.Has("input.pixel_values")) continue;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(c.model_dir);
    std::vector<float> pix, vid;
    ForwardInputs in = test::GoldenInputs(g, &pix, &vid);
    // Drop one image placeholder token: the counts no longer match.
    const int64_t image_id = model->config().image_token_id;
    auto it = std::find(in.input_ids.begin(), in.input_ids.end(), image_id);
    ASSERT_NE(it, in.input_ids.end());
    *it = 128000;
    int64_t tokens = std::count(in.input_ids.begin(), in.input_ids.end(), image_id);
    const int64_t rows = in.pixel_values.tiles * model->config().TokensPerTile();
    try {
      model->Forward(in);
      FAIL() << "expected a count mismatch error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(std::to_string(tokens)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(rows)), std::string::npos) << e.what();
    }
    return;  // one case is enough
  }
  FAIL() << "no golden case with images";
}

TEST(Api, BadInputsAreErrors) {
  const auto cases = AllCases();
  ASSERT_FALSE(cases.empty());
  auto model = PerceptionLMForConditionalGeneration::FromPretrained(cases[0].model_dir);
  ForwardInputs in;
  in.input_ids = {1, 2, 3};
  in.len = 4;  // wrong
  EXPECT_THROW(model->Forward(in), Error);
  in.len = 3;
  in.input_ids = {1, -5, 3};
  EXPECT_THROW(model->Forward(in), Error);
  in.input_ids = {1, 2, model->config().text.vocab_size};
  EXPECT_THROW(model->Forward(in), Error);
  in.input_ids = {1, 2, 3};
  in.logits_positions = {7};
  EXPECT_THROW(model->Forward(in), Error);
  in.logits_positions.clear();
  in.labels = {1, 2};
  EXPECT_THROW(model->Forward(in), Error);
}

}  // namespace
}  // namespace plm
