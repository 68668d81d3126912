// The forward-pass options of the public API behave like the reference's keyword arguments:
// inputs_embeds vs input_ids, logits_to_keep, explicit logits positions, placeholder count checks.
#include <gtest/gtest.h>

#include "core/cpu_features.h"
#include "io/safetensors.h"
#include "model/quantized_checkpoint.h"
#include "model/weight_store.h"
#include "plm/error.h"
#include "plm/model.h"
#include "plm/perception_lm_model.h"
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

// Bytes of the checkpoint's tensors per side: vision (tower + projector) and text.
std::pair<size_t, size_t> CheckpointBytes(const std::string& dir, size_t bytes_per_element) {
  size_t vision = 0, text = 0;
  for (const auto& f : test::ListDir(dir, false)) {
    if (!f.ends_with(".safetensors")) continue;
    const SafetensorsFile file(dir + "/" + f);
    for (const auto& [name, view] : file.tensors()) {
      const bool v = name.starts_with("model.vision_tower.") ||
                     name.starts_with("model.multi_modal_projector.");
      (v ? vision : text) += bytes_per_element == 0
                                 ? view.nbytes
                                 : static_cast<size_t>(view.numel()) * bytes_per_element;
    }
  }
  return {vision, text};
}

// int8 bytes of the decoder's linear layers (and the LM head), from the config alone; `held`:
// the most a model may hold for them and its norms (per-row scales and sums, k and n padded to
// 64 by the blocked layout, float32 norms).
size_t DecoderInt8Bytes(const TextConfig& t, bool held = false) {
  const int64_t D = t.hidden_size, q = t.num_attention_heads * t.head_dim,
                kv = t.num_key_value_heads * t.head_dim, I = t.intermediate_size;
  auto mat = [&](int64_t n, int64_t k) {
    auto r = [&](int64_t x) { return held ? (x + 63) / 64 * 64 : x; };
    return r(n) * r(k) + (held ? 8 * n : 0);
  };
  const int64_t layer = mat(q, D) + 2 * mat(kv, D) + mat(D, q) + 2 * mat(I, D) + mat(D, I);
  const int64_t norms = held ? (2 * t.num_hidden_layers + 1) * D * 4 : 0;
  return static_cast<size_t>(t.num_hidden_layers * layer + mat(t.vocab_size, D) + norms);
}

// int8 bytes of the vision tower's block matrices, from the config alone.
size_t VisionInt8Bytes(const VisionConfig& v) {
  const int64_t D = v.embed_dim, hidden = v.mlp_hidden();
  return static_cast<size_t>(v.depth * (3 * D * D + D * D + 2 * hidden * D));
}

// Runs the vision tower once on a tile of zeros.
void RunOneTile(const PerceptionLMForConditionalGeneration& model) {
  const VisionConfig& v = model.config().vision;
  std::vector<float> tile(static_cast<size_t>(3 * v.img_height * v.img_width), 0.0f);
  PixelInputs pixels;
  pixels.data = tile.data();
  pixels.tiles = 1;
  model.GetImageFeatures(pixels);
}

// weight_bytes() counts the weights in the form each run holds them: float32 copies on the
// reference path, int8 copies quantized at load, in place from a quantized folder.
TEST(Api, WeightBytesFollowTheFormatHeld) {
  for (const auto& dir : test::FixtureModels()) {
    SCOPED_TRACE(dir);
    {
      // f32: every tensor as float32 (in place where the checkpoint stores float32); the vision
      // tower's block matrices as stored until the first image converts them.
      auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir);
      const auto [vision, text] = CheckpointBytes(dir, 4);
      const auto wb = model->weight_bytes();
      EXPECT_GT(wb.vision.total(), 0u);
      EXPECT_LE(wb.vision.total(), vision);
      EXPECT_EQ(wb.text.total(), text);
      RunOneTile(*model);
      EXPECT_EQ(model->weight_bytes().vision.total(), vision);
      EXPECT_EQ(model->weight_bytes().text.total(), text);
    }
    {
      // bf16: nothing of the checkpoint is counted twice (a tied LM head reads the embedding
      // table in place, the table itself too).
      LoadOptions bf16;
      bf16.compute = ComputeType::kBF16;
      auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, bf16);
      EXPECT_LE(model->weight_bytes().text.in_place, CheckpointBytes(dir, 0).second);
    }
    LoadOptions q8;
    q8.compute = ComputeType::kQ8;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, q8);
    const auto at_load = model->weight_bytes();
    const TextConfig& tc = model->config().text;
    const size_t int8 = DecoderInt8Bytes(tc);
    // Quantized at load: the decoder's int8 matrices are owned, the embedding table is read in
    // place (converted row by row on lookup).
    EXPECT_GE(at_load.text.owned, int8);
    EXPECT_LE(at_load.text.owned, DecoderInt8Bytes(tc, true));
    const size_t table =
        WeightStore::Open(dir).GetAnyShape("model.language_model.embed_tokens.weight").nbytes;
    EXPECT_EQ(at_load.text.in_place, table);
    // The vision tower's block matrices are quantized on the first image, not at load.
    const size_t vision_int8 = VisionInt8Bytes(model->config().vision);
    EXPECT_GE(at_load.vision.in_place, vision_int8);  // still the checkpoint's (≥ 1 B/element)
    RunOneTile(*model);
    const auto after_image = model->weight_bytes();
    EXPECT_GE(after_image.vision.owned, at_load.vision.owned + vision_int8);
    EXPECT_EQ(after_image.text.total(), at_load.text.total());
    {
      // PrepareVision builds them without an image: the same bytes as after one.
      auto prepared = PerceptionLMForConditionalGeneration::FromPretrained(dir, q8);
      prepared->PrepareVision();
      EXPECT_EQ(prepared->weight_bytes().vision.owned, after_image.vision.owned);
      prepared->PrepareVision();  // once
      EXPECT_EQ(prepared->weight_bytes().vision.owned, after_image.vision.owned);
    }
    const std::string out = test::MakeTempDir();
    QuantizeCheckpoint(dir, out, ComputeType::kQ8);
    auto folder = PerceptionLMForConditionalGeneration::FromPretrained(out);
    const auto stored = folder->weight_bytes();
    // From a quantized folder the same int8 matrices are used as stored (where this CPU runs
    // the stored layout): only the small float32 norms are copies.
    EXPECT_GE(stored.text.total(), int8);
    if (Cpu().avx512_full()) {
      EXPECT_GE(stored.text.in_place, int8);
      EXPECT_LT(stored.text.owned * 10, stored.text.total());
    } else {
      EXPECT_GE(stored.text.owned, int8);  // rows rebuilt from the blocked layout at load
    }
  }
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

// PerceptionLMModel: the last hidden state (after the final norm) of every golden case, the
// placeholder masks from ids and from embeddings, and count mismatches naming both counts.
TEST(Api, BaseModelAndPlaceholderMask) {
  const auto cases = AllCases();
  ASSERT_FALSE(cases.empty());
  std::string last_dir;
  std::unique_ptr<PerceptionLMModel> base;
  for (const auto& c : cases) {
    if (c.model_dir != last_dir) {
      base = PerceptionLMModel::FromPretrained(c.model_dir);
      last_dir = c.model_dir;
    }
    SafetensorsFile g(c.golden);
    std::vector<float> pix, vid;
    ForwardInputs in = test::GoldenInputs(g, &pix, &vid);
    const BaseModelOutputs o = base->Forward(in);
    const std::string k = "text_hidden." + std::to_string(base->config().text.num_hidden_layers);
    ASSERT_TRUE(g.Has(k)) << c.golden;
    const auto want = g.Get(k).ToF32();
    ASSERT_EQ(o.last_hidden_state.data.size(), want.size());
    EXPECT_LE(test::Compare(o.last_hidden_state.ptr(), want.data(), want.size()).rel(), 1e-4)
        << c.golden;
    EXPECT_TRUE(o.hidden_states.empty());  // only when asked for
    if (g.Has("image.features")) {
      const auto f = g.Get("image.features").ToF32();
      ASSERT_EQ(o.image.features.data.size(), f.size());
      EXPECT_LE(test::Compare(o.image.features.ptr(), f.data(), f.size()).rel(), 1e-4);
      const Tensor direct = base->GetImageFeatures(in.pixel_values);
      EXPECT_EQ(direct.data, o.image.features.data);
    }

    const int64_t tpt = base->config().TokensPerTile();
    const int64_t image_rows = in.pixel_values.tiles * tpt,
                  video_rows = in.pixel_values_videos.tiles * tpt;
    const PlaceholderMasks m = base->GetPlaceholderMask(in, image_rows, video_rows);
    EXPECT_EQ(m.image_tokens, image_rows) << c.golden;
    EXPECT_EQ(m.video_tokens, video_rows) << c.golden;
    for (size_t i = 0; i < in.input_ids.size(); ++i) {
      ASSERT_EQ(m.image[i], in.input_ids[i] == base->config().image_token_id);
      ASSERT_EQ(m.video[i], in.input_ids[i] == base->config().video_token_id);
    }
    // From embeddings: the rows equal to the placeholder embeddings.
    ForwardInputs ids_only = in;
    ids_only.pixel_values = {};
    ids_only.pixel_values_videos = {};
    ForwardInputs by_embeds = in;
    by_embeds.inputs_embeds = base->model().GetInputEmbeddings(ids_only, nullptr).data;
    by_embeds.input_ids.clear();
    const PlaceholderMasks e = base->GetPlaceholderMask(by_embeds);
    EXPECT_EQ(e.image, m.image);
    EXPECT_EQ(e.video, m.video);
    if (image_rows > 0) {
      try {
        base->GetPlaceholderMask(in, image_rows + 1);
        ADD_FAILURE() << "expected a count mismatch";
      } catch (const Error& err) {
        EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument);
        const std::string msg = err.what();
        EXPECT_NE(msg.find(std::to_string(image_rows)), std::string::npos) << msg;
        EXPECT_NE(msg.find(std::to_string(image_rows + 1)), std::string::npos) << msg;
      }
    }
    // output_hidden_states / output_attentions pass through.
    ForwardInputs all = in;
    all.output_hidden_states = true;
    all.output_attentions = true;
    const BaseModelOutputs h = base->Forward(all);
    EXPECT_EQ(h.hidden_states.size(),
              static_cast<size_t>(base->config().text.num_hidden_layers + 1));
    EXPECT_EQ(h.attentions.size(), static_cast<size_t>(base->config().text.num_hidden_layers));
    EXPECT_EQ(h.hidden_states.back().data, h.last_hidden_state.data);
  }
}

// A KV cache filled with a prompt that holds media, trimmed back to that prefix and reused for
// other continuations, gives the logits of a fresh run of the whole sequence.
TEST(Api, SharedPrefixCacheReuseWithMedia) {
  const auto cases = AllCases();
  int checked = 0;
  std::string last_dir;
  std::unique_ptr<PerceptionLMForConditionalGeneration> model;
  for (const auto& c : cases) {
    SafetensorsFile g(c.golden);
    std::vector<float> pix, vid;
    const ForwardInputs in = test::GoldenInputs(g, &pix, &vid);
    if (in.batch != 1) continue;
    if (c.model_dir != last_dir) {
      model = PerceptionLMForConditionalGeneration::FromPretrained(c.model_dir);
      last_dir = c.model_dir;
    }
    const int64_t L = in.len, V = model->config().text.vocab_size;
    // The prefix ends after the last placeholder (or halfway for text-only prompts).
    int64_t prefix = L / 2;
    for (int64_t i = 0; i < L; ++i)
      if (in.input_ids[i] == model->config().image_token_id ||
          in.input_ids[i] == model->config().video_token_id)
        prefix = i + 1;
    if (prefix >= L - 1) continue;
    KVCache cache = model->NewCache(1, prefix);
    ForwardInputs head = in;
    head.input_ids.assign(in.input_ids.begin(), in.input_ids.begin() + prefix);
    head.len = prefix;
    head.attention_mask.clear();
    model->Forward(head, &cache);
    ASSERT_EQ(cache.length(), prefix);
    // Two different continuations after the same cached prefix.
    for (int variant = 0; variant < 2; ++variant) {
      std::vector<int64_t> full_ids = in.input_ids;
      if (variant == 1) full_ids.back() = 9906;  // another last token
      cache.Trim(prefix);
      ForwardInputs tail;
      tail.input_ids.assign(full_ids.begin() + prefix, full_ids.end());
      tail.len = L - prefix;
      const ForwardOutputs cached = model->Forward(tail, &cache);
      ForwardInputs fresh = in;
      fresh.input_ids = full_ids;
      fresh.attention_mask.clear();
      const ForwardOutputs ref = model->Forward(fresh);
      const double err = test::Compare(cached.logits.ptr(), ref.logits.ptr() + prefix * V,
                                       static_cast<size_t>((L - prefix) * V))
                             .max_abs;
      EXPECT_LE(err, 1e-4) << c.golden << " variant " << variant;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace plm
