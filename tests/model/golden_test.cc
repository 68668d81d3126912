// Reproduces the Hugging Face reference outputs of every fixture model and golden case:
// vision tower (last and per-block hidden states), projector features, decoder hidden states,
// logits, attentions, loss, and greedy generation. Models and cases are discovered from
// $PLM_FIXTURES; a folder with no models or a case that cannot run fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

#include "io/safetensors.h"
#include "plm/generation.h"
#include "plm/model.h"
#include "support/golden_inputs.h"
#include "support/test_support.h"

namespace plm {
namespace {

constexpr double kHiddenRelTol = 1e-4;  // fixtures README: hidden states and features
constexpr double kLogitAbsTol = 1e-3;   // fixtures README: logits
constexpr double kNearTie = 1e-3;       // greedy steps with a smaller top-1/top-2 margin may differ

struct Golden {
  std::unique_ptr<SafetensorsFile> file;
  bool Has(const std::string& n) const { return file->Has(n); }
  std::vector<float> F(const std::string& n) const { return file->Get(n).ToF32(); }
  std::vector<int64_t> I(const std::string& n) const { return file->Get(n).ToI64(); }
  std::vector<int64_t> Shape(const std::string& n) const { return file->Get(n).shape; }
};

std::vector<std::string> Models() {
  std::vector<std::string> out;
  const std::string dir = test::FixturesDir() + "/models";
  for (const auto& m : test::ListDir(dir, true))
    if (test::PathExists(dir + "/" + m + "/config.json")) out.push_back(m);
  return out;
}

std::vector<std::string> Cases(const std::string& model) {
  std::vector<std::string> out;
  for (const auto& f : test::ListDir(test::FixturesDir() + "/goldens/" + model, false)) {
    const std::string suffix = ".safetensors";
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(f.substr(0, f.size() - suffix.size()));
  }
  return out;
}

const PerceptionLMForConditionalGeneration& LoadModel(const std::string& name) {
  static std::map<std::string, std::unique_ptr<PerceptionLMForConditionalGeneration>> cache;
  auto& m = cache[name];
  if (!m)
    m = PerceptionLMForConditionalGeneration::FromPretrained(test::FixturesDir() + "/models/" +
                                                             name);
  return *m;
}

double Rel(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  return test::Compare(got.data(), want.data(), got.size()).rel();
}

// Tracks the worst error per stage and prints one line per case.
struct Report {
  std::string id;
  std::map<std::string, double> worst;
  void Add(const std::string& stage, double err, double tol) {
    worst[stage] = std::max(worst[stage], err);
    EXPECT_LE(err, tol) << id << ": " << stage;
  }
  std::string Line() const {
    std::string s;
    char buf[96];
    for (const auto& [k, v] : worst) {
      std::snprintf(buf, sizeof buf, " %s=%.2e", k.c_str(), v);
      s += buf;
    }
    return s;
  }
};

void CheckVision(const PerceptionLMForConditionalGeneration& model, const Golden& g,
                 const std::string& kind, const std::string& pixel_key, Report* rep) {
  if (!g.Has(pixel_key)) return;
  const auto shape = g.Shape(pixel_key);  // [1, tiles, 3, T, T]
  ASSERT_EQ(shape.size(), 5u);
  const std::vector<float> pixels = g.F(pixel_key);
  VisionOutputs vo;
  model.GetImageFeatures({pixels.data(), shape[0] * shape[1]}, &vo, true);
  if (g.Has(kind + ".vision_last_hidden_state"))
    rep->Add(kind + ".vision_last",
             Rel(vo.last_hidden_state.data, g.F(kind + ".vision_last_hidden_state")),
             kHiddenRelTol);
  for (size_t i = 0; i < vo.block_outputs.size(); ++i) {
    const std::string k = kind + ".vision_hidden." + std::to_string(i);
    if (g.Has(k))
      rep->Add(kind + ".vision_blocks", Rel(vo.block_outputs[i].data, g.F(k)), kHiddenRelTol);
  }
  ASSERT_TRUE(g.Has(kind + ".features")) << rep->id;
  rep->Add(kind + ".features", Rel(vo.features.data, g.F(kind + ".features")), kHiddenRelTol);
}

void CheckForward(const PerceptionLMForConditionalGeneration& model, const Golden& g, Report* rep) {
  std::vector<float> pix, vid;
  ForwardInputs in = test::GoldenInputs(*g.file, &pix, &vid);
  const int64_t B = in.batch, L = in.len, V = model.config().text.vocab_size;
  in.output_hidden_states = true;
  in.output_attentions = g.Has("text_attentions.0");
  if (g.Has("labels")) in.labels = g.I("labels");
  ForwardOutputs out = model.Forward(in);

  for (size_t i = 0; i < out.hidden_states.size(); ++i) {
    const std::string k = "text_hidden." + std::to_string(i);
    ASSERT_TRUE(g.Has(k)) << rep->id << ": golden lacks " << k;
    rep->Add("text_hidden", Rel(out.hidden_states[i].data, g.F(k)), kHiddenRelTol);
  }
  for (size_t i = 0; i < out.attentions.size(); ++i) {
    const std::string k = "text_attentions." + std::to_string(i);
    const auto want = g.F(k);
    rep->Add("attentions", test::Compare(out.attentions[i].ptr(), want.data(), want.size()).max_abs,
             1e-4);
  }

  // Logits at the golden top-5 ids of every position, and argmax agreement away from near-ties.
  const auto top_ids = g.I("logits.top5_ids");
  const auto top_vals = g.F("logits.top5_values");
  const auto argmax = g.I("logits.argmax");
  double err = 0;
  int64_t argmax_miss = 0;
  for (int64_t r = 0; r < B * L; ++r) {
    const float* row = out.logits.ptr() + r * V;
    for (int j = 0; j < 5; ++j)
      err = std::max(err, std::fabs(double(row[top_ids[r * 5 + j]]) - top_vals[r * 5 + j]));
    const int64_t mine = std::max_element(row, row + V) - row;
    const double margin = top_vals[r * 5] - top_vals[r * 5 + 1];
    if (mine != argmax[r] && margin > kNearTie) ++argmax_miss;
  }
  rep->Add("logits_top5", err, kLogitAbsTol);
  EXPECT_EQ(argmax_miss, 0) << rep->id << ": argmax differs at positions with a clear margin";

  const auto sample_ids = g.I("logits.vocab_sample_ids");
  const auto sample = g.F("logits.last_vocab_sample");
  const auto lse = g.F("logits.last_logsumexp");
  double serr = 0, lerr = 0;
  for (int64_t b = 0; b < B; ++b) {
    const float* row = out.logits.ptr() + (b * L + L - 1) * V;
    for (size_t j = 0; j < sample_ids.size(); ++j)
      serr =
          std::max(serr, std::fabs(double(row[sample_ids[j]]) - sample[b * sample_ids.size() + j]));
    const double mx = *std::max_element(row, row + V);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - mx);
    lerr = std::max(lerr, std::fabs(std::log(s) + mx - lse[b]));
  }
  rep->Add("last_logits", serr, kLogitAbsTol);
  rep->Add("logsumexp", lerr, kLogitAbsTol);
  if (g.Has("loss")) {
    ASSERT_TRUE(out.loss.has_value());
    rep->Add("loss", std::fabs(*out.loss - g.F("loss")[0]), kLogitAbsTol);
  }
}

// Greedy generation; returns "matched/total" for the report.
std::string CheckGenerate(const PerceptionLMForConditionalGeneration& model, const Golden& g,
                          const std::string& model_dir, Report* rep) {
  std::vector<float> pix, vid;
  ForwardInputs in = test::GoldenInputs(*g.file, &pix, &vid);
  const auto want = g.I("generated_ids");
  const auto gshape = g.Shape("generated_ids");
  const int64_t B = gshape[0], steps = gshape[1], V = model.config().text.vocab_size;
  GenerationConfig gc = GenerationConfig::FromDirectory(model_dir);
  gc.max_new_tokens = steps;
  GenerateOptions opts;
  opts.output_scores = true;
  GenerateOutput out = Generate(model, in, gc, opts);
  const auto top_vals = g.F("generated.top5_values");
  const auto top_ids = g.I("generated.top5_ids");
  int64_t matched = 0, total = 0;
  double err = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < steps; ++t) {
      ++total;
      const size_t at = static_cast<size_t>((b * steps + t) * 5);
      if (t >= static_cast<int64_t>(out.scores.size())) break;
      const float* row = out.scores[t].ptr() + b * V;
      for (int j = 0; j < 5; ++j)
        err = std::max(err, std::fabs(double(row[top_ids[at + j]]) - top_vals[at + j]));
      const int64_t got =
          t < static_cast<int64_t>(out.sequences[b].size()) ? out.sequences[b][t] : -1;
      if (got == want[b * steps + t]) {
        ++matched;
        continue;
      }
      // Ids must agree up to the first near-tie step; after a divergence nothing is comparable.
      EXPECT_LT(top_vals[at] - top_vals[at + 1], kNearTie)
          << rep->id << ": generated id differs at row " << b << " step " << t << " (got " << got
          << ", want " << want[b * steps + t] << ")";
      total += steps - 1 - t;
      break;
    }
  }
  rep->Add("gen_scores", err, kLogitAbsTol);
  return std::to_string(matched) + "/" + std::to_string(total);
}

TEST(Goldens, EveryModelAndCase) {
  const auto models = Models();
  ASSERT_FALSE(models.empty()) << "no models under " << test::FixturesDir() << "/models";
  for (const auto& m : models) {
    const auto cases = Cases(m);
    ASSERT_FALSE(cases.empty()) << "no golden cases for model " << m;
    const auto& model = LoadModel(m);
    for (const auto& c : cases) {
      Report rep;
      rep.id = m + "/" + c;
      Golden g;
      g.file = std::make_unique<SafetensorsFile>(test::FixturesDir() + "/goldens/" + m + "/" + c +
                                                 ".safetensors");
      ASSERT_TRUE(g.Has("input.input_ids")) << rep.id << " has no inputs";
      CheckVision(model, g, "image", "input.pixel_values", &rep);
      CheckVision(model, g, "video", "input.pixel_values_videos", &rep);
      CheckForward(model, g, &rep);
      const std::string gen = CheckGenerate(model, g, test::FixturesDir() + "/models/" + m, &rep);
      std::printf("[golden] %-28s generated %s%s\n", rep.id.c_str(), gen.c_str(),
                  rep.Line().c_str());
    }
  }
}

// Decoding token by token with the KV cache gives the logits of a full recompute.
TEST(Goldens, KvCacheMatchesRecompute) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  for (const auto& m : models) {
    const auto& model = LoadModel(m);
    const int64_t V = model.config().text.vocab_size;
    std::vector<int64_t> ids = {128000, 128006, 9125, 128007, 271,    9906,
                                11,     1917,   0,    128009, 128006, 78191};
    const auto L = static_cast<int64_t>(ids.size());
    ForwardInputs full;
    full.input_ids = ids;
    full.len = L;
    ForwardOutputs ref = model.Forward(full);
    KVCache cache = model.NewCache(1, 1);  // forces growth along the way
    double err = 0;
    const int64_t split = 5;
    ForwardInputs first;
    first.input_ids.assign(ids.begin(), ids.begin() + split);
    first.len = split;
    ForwardOutputs o = model.Forward(first, &cache);
    for (int64_t i = 0; i < split; ++i)
      err =
          std::max(err, test::Compare(o.logits.ptr() + i * V, ref.logits.ptr() + i * V, V).max_abs);
    for (int64_t i = split; i < L; ++i) {
      ForwardInputs step;
      step.input_ids = {ids[i]};
      step.len = 1;
      o = model.Forward(step, &cache);
      err = std::max(err, test::Compare(o.logits.ptr(), ref.logits.ptr() + i * V, V).max_abs);
    }
    EXPECT_LE(err, 1e-4) << m;
    // Trimming back to a shared prefix and continuing reproduces the same logits.
    cache.Trim(split);
    ForwardInputs rest;
    rest.input_ids.assign(ids.begin() + split, ids.end());
    rest.len = L - split;
    o = model.Forward(rest, &cache);
    const double err2 =
        test::Compare(o.logits.ptr(), ref.logits.ptr() + split * V, (L - split) * V).max_abs;
    EXPECT_LE(err2, 1e-4) << m;
    std::printf("[kv-cache] %s incremental max|diff|=%.2e, trimmed-prefix reuse max|diff|=%.2e\n",
                m.c_str(), err, err2);
  }
}

}  // namespace
}  // namespace plm
