// Runs the `plm` binary as a user would: golden continuations from image files, seeded sampling,
// and one clear error line with a distinct exit code for each kind of bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/cli_util.h"
#include "core/cpu_features.h"
#include "core/json.h"
#include "io/image_decode.h"
#include "io/image_processor.h"
#include "io/safetensors.h"
#include "plm/model.h"
#include "plm/processor.h"
#include "support/test_support.h"

namespace plm {
namespace {

using test::RunPlm;
using test::RunResult;

std::vector<std::string> ModelDirs() {
  std::vector<std::string> out;
  for (const auto& p : test::FixtureModels()) out.push_back(p.substr(p.rfind('/') + 1));
  return out;
}

std::string Between(const std::string& s, const std::string& a, const std::string& b) {
  const size_t i = s.find(a);
  if (i == std::string::npos) return "";
  const size_t j = s.find(b, i + a.size());
  return j == std::string::npos ? "" : s.substr(i + a.size(), j - i - a.size());
}

// The inputs/ file whose preprocessing reproduces the golden pixels exactly.
std::string FindImage(const std::string& model_dir, const std::vector<float>& pixels) {
  ImageProcessor proc(ImageProcessorConfig::Load(model_dir));
  const std::string root = test::FixturesDir() + "/inputs";
  for (const auto& f : test::ListDir(root, false)) {
    try {
      const Image img = LoadImageFile(root + "/" + f);
      const ProcessedImage p = proc.Preprocess(img);
      if (p.pixel_values == pixels) return root + "/" + f;
    } catch (const std::exception&) {
      // not an image (e.g. a .npy video)
    }
  }
  return "";
}

TEST(Cli, RunReproducesGoldenImageContinuation) {
  const auto models = ModelDirs();
  ASSERT_FALSE(models.empty());
  for (const auto& m : models) {
    const std::string model_dir = test::FixturesDir() + "/models/" + m;
    const std::string golden = test::FixturesDir() + "/goldens/" + m + "/image.safetensors";
    ASSERT_TRUE(test::PathExists(golden)) << "model " << m << " has no image golden";
    SafetensorsFile g(golden);
    const std::string image = FindImage(model_dir, g.Get("input.pixel_values").ToF32());
    ASSERT_FALSE(image.empty()) << m << ": no input image reproduces the golden pixels";
    auto proc = PerceptionLMProcessor::FromPretrained(model_dir);
    const std::string prompt = proc->Decode(g.Get("input.input_ids").ToI64(), false);
    const std::string system = Between(prompt, "system<|end_header_id|>\n\n", "<|eot_id|>");
    std::string user = Between(prompt, "user<|end_header_id|>\n\n", "<|eot_id|>");
    while (user.rfind("<|image|>", 0) == 0) user = user.substr(9);
    const auto want = g.Get("generated_ids").ToI64();
    const auto top = g.Get("generated.top5_values").ToF32();
    RunResult r = RunPlm({"run", "-m", model_dir, "-i", image, "-p", user, "--system", system, "-n",
                          std::to_string(want.size()), "--json", "-t", "2", "--dtype", "f32"});
    ASSERT_EQ(r.code, 0) << r.err;
    const Json j = ParseJson(r.out, "plm run --json");
    const auto got = j["tokens"].get<std::vector<int64_t>>();
    size_t matched = 0;
    for (; matched < want.size() && matched < got.size() && got[matched] == want[matched];
         ++matched) {
    }
    if (matched < want.size()) {
      // Only a near-tie in the reference may make greedy decoding diverge.
      EXPECT_LT(top[matched * 5] - top[matched * 5 + 1], 1e-3)
          << m << ": diverged at step " << matched;
    }
    EXPECT_EQ(j["prompt_tokens"].get<int64_t>(), g.Get("input.input_ids").shape[1]) << m;
    std::printf("[cli] %s: %s -> %zu/%zu golden tokens\n", m.c_str(), image.c_str(), matched,
                want.size());
  }
}

TEST(Cli, SeededSamplingIsReproducible) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const std::vector<std::string> args = {
      "run",           "-m",  model_dir, "-p",   "Tell me a story.", "-n",   "12",
      "--temperature", "0.9", "--top-p", "0.95", "--seed",           "1234", "--json"};
  const RunResult a = RunPlm(args), b = RunPlm(args);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(ParseJson(a.out, "a")["tokens"], ParseJson(b.out, "b")["tokens"]);
}

void ExpectError(const std::vector<std::string>& args, int code, const std::string& needle) {
  const RunResult r = RunPlm(args);
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), r.err.empty() ? 0 : 1)
      << "one line: " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos);
}

TEST(Cli, ErrorsAreOneLineWithDistinctExitCodes) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const std::string tmp = test::MakeTempDir();
  ExpectError({"run", "-m", "/no/such/model", "-p", "hi"}, 3, "/no/such/model");
  ExpectError({"run", "-m", model_dir, "-i", "/no/such.png", "-p", "hi"}, 3, "/no/such.png");
  test::WriteFile(tmp + "/bad.png", std::string("\x89PNG\r\n\x1a\n", 8) + "garbage");
  ExpectError({"run", "-m", model_dir, "-i", tmp + "/bad.png", "-p", "hi"}, 4, "bad.png");
  ExpectError({"run", "-m", model_dir, "-v", "/no/such.mp4", "-p", "hi"}, 3, "/no/such.mp4");
  ExpectError({"run", "-m", model_dir, "-p", "hi", "-n", "100000"}, 6, "context");
  ExpectError({"run", "-m", model_dir, "-p", "look: <|image|>"}, 2, "image");
  ExpectError({"run", "-m", model_dir, "-p", "hi", "--bogus-flag"}, 2, "--bogus-flag");
  ExpectError({"run", "-m", model_dir}, 2, "prompt");
  test::WriteFile(tmp + "/config.json", "{");
  ExpectError({"info", tmp}, 4, "config.json");
}

TEST(Cli, InfoDescribesTheModel) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const RunResult r = RunPlm({"info", model_dir, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = ParseJson(r.out, "plm info --json");
  EXPECT_GT(j["parameters"]["total"].get<int64_t>(), 0);
  EXPECT_GT(j["tokens_per_tile"].get<int64_t>(), 0);
  EXPECT_TRUE(r.err.empty()) << "stderr must stay quiet when it is not a terminal: " << r.err;
}

// plm bounds OpenMP's spinning waits unless the user chose a policy or a spin count (it
// re-executes itself once with GOMP_SPINCOUNT=30000); `plm bench --json` reports what is in effect.
TEST(Cli, OpenMpWaitsDefaultToABoundedSpinAndRespectTheUser) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const std::vector<std::string> args = {
      "bench", "--config", model_dir, "--model",   model_dir, "--dtype",         "f32", "--threads",
      "1",     "--tiles",  "0",       "--prefill", "4",       "--decode-tokens", "2",   "--json"};
  // `plm bench --json` with `set` in the environment and `unset` removed from it.
  auto bench = [&](std::map<std::string, std::string> set, std::vector<std::string> unset) {
    test::RunOptions o;
    o.env = std::move(set);
    o.unset_env = std::move(unset);
    const RunResult r = RunPlm(args, o);
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseJson(r.out, "bench");
  };
  const Json a = bench({}, {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"});
  EXPECT_EQ(a["omp_wait_policy"], "");
  EXPECT_EQ(a["gomp_spincount"], "30000");
  // The f32 path runs the reference attention kernels on every CPU.
  EXPECT_EQ(a["attention_kernel"], "reference");
  EXPECT_EQ(a["vision_attention_kernel"], "reference");
  const Json b = bench({{"OMP_WAIT_POLICY", "active"}}, {"GOMP_SPINCOUNT"});
  EXPECT_EQ(b["omp_wait_policy"], "active");
  EXPECT_EQ(b["gomp_spincount"], "");
  const Json c = bench({{"GOMP_SPINCOUNT", "1000"}}, {"OMP_WAIT_POLICY"});
  EXPECT_EQ(c["omp_wait_policy"], "");
  EXPECT_EQ(c["gomp_spincount"], "1000");
}

// PLM_CPU picks the kernel set a CPU without AVX-512 would run, `plm bench --json` names it, and
// every format runs end to end on it (prompt, decode steps through the bf16 cache).
TEST(Cli, BenchRunsAndNamesTheKernelSetPlmCpuSelects) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const bool avx2 = test::Avx2Only(Cpu()).avx2_kernels();
  for (const std::string cpu : {"avx2", "generic"}) {
    for (const std::string dtype : {"bf16", "q8", "q4"}) {
      SCOPED_TRACE(cpu + " " + dtype);
      test::RunOptions o;
      o.env = {{"PLM_CPU", cpu}};
      const RunResult r = RunPlm(
          {"bench", "--config", model_dir, "--model", model_dir, "--dtype", dtype, "--threads", "2",
           "--tiles", "0", "--prefill", "40", "--decode-tokens", "3", "--json"},
          o);
      ASSERT_EQ(r.code, 0) << r.err;
      const Json j = ParseJson(r.out, "bench");
      if (cpu == "generic") {
        EXPECT_EQ(j["cpu_kernels"], "portable");
      } else if (avx2) {
        EXPECT_EQ(j["cpu_kernels"], "avx2");
      } else {  // (this process may itself run under PLM_CPU=generic)
        EXPECT_NE(j["cpu_kernels"], "avx512");
      }
      EXPECT_GT(j["decode_tok_per_s"]["40"].get<double>(), 0.0);
    }
  }
}

// `plm bench --json` relates its peak RSS to what the run keeps resident: the weights as the
// model holds them (PerceptionLMForConditionalGeneration::weight_bytes: copies it owns, and the
// vision side's in-place weights only when tiles ran) and the KV cache at the longest context.
TEST(Cli, BenchReportsMemoryAgainstWeightsAndKvCache) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  for (const std::string dtype : {"q8", "bf16"}) {
    SCOPED_TRACE(dtype);
    // The same weights in this process: bf16 after a tile ran (the tower packs on first use).
    LoadOptions options;
    options.compute = dtype == "q8" ? ComputeType::kQ8 : ComputeType::kBF16;
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(model_dir, options);
    const VisionConfig& vc = model->config().vision;
    std::vector<float> pix(static_cast<size_t>(3 * vc.img_height * vc.img_width), 0.0f);
    if (dtype == "bf16") model->GetImageFeatures({pix.data(), 1});
    const auto wb = model->weight_bytes();
    ASSERT_GT(wb.text.owned, 0u);
    // q8 without tiles: the vision side's owned copies count (the projector's: the tower's
    // matrices are built on the first image), its in-place weights do not.
    const double expected = static_cast<double>(wb.text.total() + wb.vision.owned +
                                                (dtype == "bf16" ? wb.vision.in_place : 0));
    const RunResult r =
        RunPlm({"bench", "--config", model_dir, "--model", model_dir, "--dtype", dtype, "--threads",
                "1", "--tiles", dtype == "bf16" ? "1" : "0", "--prefill", "5,9", "--decode-tokens",
                "2", "--prefill-chunk", "4", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    const Json j = ParseJson(r.out, "bench");
    EXPECT_EQ(j["prefill_chunk"], 4);
    // The first tile (which builds the tower's matrices) is timed apart from the others.
    EXPECT_EQ(j.contains("vision_first_tile_s"), dtype == "bf16");
    if (dtype == "bf16") {
      EXPECT_GT(j["vision_first_tile_s"].get<double>(), 0.0);
    }
    EXPECT_EQ(j["weight_bytes"].get<double>(), expected);
    EXPECT_EQ(j["weight_bytes_owned"].get<double>(),
              static_cast<double>(wb.text.owned + wb.vision.owned));
    const Json text = ReadJsonFile(model_dir + "/config.json")["text_config"];
    const int64_t layers = text["num_hidden_layers"], kv_heads = text["num_key_value_heads"];
    const int64_t head_dim =
        text.contains("head_dim")
            ? text["head_dim"].get<int64_t>()
            : text["hidden_size"].get<int64_t>() / text["num_attention_heads"].get<int64_t>();
    // bf16 keys and values for 9 prompt + 2 decoded positions.
    EXPECT_EQ(j["kv_cache_bytes"].get<double>(),
              static_cast<double>(2 * layers * kv_heads * head_dim * 11 * 2));
    EXPECT_NEAR(j["peak_rss_over_weights_kv"].get<double>(),
                j["peak_rss_bytes"].get<double>() /
                    (j["weight_bytes"].get<double>() + j["kv_cache_bytes"].get<double>()),
                1e-9);
  }
}

// `plm bench` decodes in segments of 8 steps with a bandwidth probe before, between and after
// them: each segment is reported with the better of its two probes, the context's bandwidth is
// their time-weighted average, and the probe's 1 GiB buffer lives in a child process (it is not
// in the peak RSS).
TEST(Cli, BenchRelatesDecodeSegmentsToTheirProbes) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const RunResult r =
      RunPlm({"bench", "--config", model_dir, "--model", model_dir, "--dtype", "bf16", "--threads",
              "2", "--skip-vision", "--prefill", "5", "--decode-tokens", "11", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = ParseJson(r.out, "bench");
  const Json& segs = j["decode_segments"]["5"];
  ASSERT_EQ(segs.size(), 2u);  // 10 timed steps: 8 + 2
  EXPECT_EQ(segs[0]["tokens"], 8);
  EXPECT_EQ(segs[1]["tokens"], 2);
  const double bytes = j["decode_bytes_per_token"]["5"].get<double>();
  double seconds = 0, weighted_bw = 0, steady_tokens = 0, steady_bw = 0;
  double previous_after = 0;
  for (const Json& s : segs) {
    const double dt = s["seconds"].get<double>(),
                 bw = s["read_bandwidth_bytes_per_s"].get<double>();
    ASSERT_GT(dt, 0);
    ASSERT_GT(bw, 1e8);
    EXPECT_LE(bw, j["read_bandwidth_bytes_per_s"].get<double>());
    EXPECT_NEAR(s["bandwidth_fraction"].get<double>(), bytes * s["tokens"].get<double>() / dt / bw,
                1e-9);
    // The better of the probes before and after it; they agree when within 10 % of each other.
    const double before = s["probe_before_bytes_per_s"].get<double>(),
                 after = s["probe_after_bytes_per_s"].get<double>();
    EXPECT_EQ(bw, std::max(before, after));
    if (previous_after > 0) {
      EXPECT_EQ(before, previous_after);  // shared with the previous segment
    }
    previous_after = after;
    EXPECT_EQ(s["probes_agree"].get<bool>(), std::min(before, after) >= 0.9 * bw);
    if (s["probes_agree"].get<bool>()) {
      steady_tokens += s["tokens"].get<double>();
      steady_bw += dt * bw;
    }
    seconds += dt;
    weighted_bw += dt * bw;
  }
  const Json& steady = j["decode_bandwidth_fraction_stable"]["5"];
  if (steady_bw > 0) {
    EXPECT_NEAR(steady.get<double>(), bytes * steady_tokens / steady_bw, 1e-9);
  } else {
    EXPECT_TRUE(steady.is_null());
  }
  EXPECT_NEAR(j["decode_tok_per_s"]["5"].get<double>(), 10 / seconds, 1e-6 * 10 / seconds);
  EXPECT_NEAR(j["decode_read_bandwidth_bytes_per_s"]["5"].get<double>(), weighted_bw / seconds,
              1e-6 * weighted_bw / seconds);
  EXPECT_LT(j["peak_rss_bytes"].get<double>(), 1024.0 * 1024 * 1024);
  // Where the steps' time went: every phase of the forward pass, and what is left outside them;
  // together one step's time.
  const Json ph = j["decode_phase_seconds_per_token"]["5"];
  double step = 0;
  for (const char* name : {"norms", "qkv", "rope_kv", "attention", "o", "gate_up", "silu_mul",
                           "down", "lm_head", "other"}) {
    ASSERT_TRUE(ph.contains(name)) << name;
    EXPECT_GE(ph[name].get<double>(), 0.0) << name;
    step += ph[name].get<double>();
  }
  for (const char* name : {"qkv", "o", "gate_up", "down", "lm_head", "attention"})
    EXPECT_GT(ph[name].get<double>(), 0.0) << name;
  EXPECT_NEAR(step * j["decode_tok_per_s"]["5"].get<double>(), 1.0, 1e-6);
}

// Without --dtype a model runs in the dtype its config names (transformers' dtype="auto"): bf16
// for a bfloat16 checkpoint, float32 for a float32 one; the verbose load line says which.
TEST(Cli, DefaultDtypeFollowsTheCheckpointConfig) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  for (const std::string dtype : {"bfloat16", "float32"}) {
    SCOPED_TRACE(dtype);
    const std::string dir = test::MakeTempDir();
    for (const auto& f : test::ListDir(model_dir, false))
      if (f != "config.json") std::filesystem::create_symlink(model_dir + "/" + f, dir + "/" + f);
    Json config = ReadJsonFile(model_dir + "/config.json");
    config.erase("torch_dtype");
    config["dtype"] = dtype;
    test::WriteFile(dir + "/config.json", config.dump());
    const RunResult r = RunPlm({"run", "-m", dir, "-p", "Hello", "-n", "1", "--verbose"});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string want = dtype == "bfloat16" ? "(bf16)" : "(f32)";
    EXPECT_NE(r.err.find("loaded " + dir + " " + want), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("note:"), std::string::npos) << r.err;
  }
}

// A `plm quantize` folder runs in its stored format: an explicit --dtype that says otherwise is
// named on stderr, and `plm bench` reports (and counts the bytes of) the format it measured.
TEST(Cli, QuantizedFolderOverridesDtypeAndSaysSo) {
  const std::string model_dir = test::FixturesDir() + "/models/" + ModelDirs().at(0);
  const std::string q4 = test::MakeTempDir();
  ASSERT_EQ(
      RunPlm({"quantize", "--model", model_dir, "--out", q4, "--dtype", "q4", "--quiet"}).code, 0);
  const RunResult a = RunPlm({"run", "-m", q4, "-p", "Hello", "-n", "1", "--dtype", "bf16"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.err.find("stored as q4"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("--dtype bf16"), std::string::npos) << a.err;
  const RunResult b = RunPlm({"run", "-m", q4, "-p", "Hello", "-n", "1"});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(b.err.find("stored as"), std::string::npos) << b.err;  // nothing was asked
  Json bench[2];
  int i = 0;
  for (const char* dtype : {"bf16", "q4"}) {
    const RunResult r = RunPlm({"bench", "--config", q4, "--model", q4, "--dtype", dtype,
                                "--threads", "1", "--tiles", "0", "--skip-vision", "--prefill", "5",
                                "--decode-tokens", "2", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    bench[i++] = ParseJson(r.out, "bench");
  }
  EXPECT_EQ(bench[0]["dtype"], "q4");
  EXPECT_EQ(bench[0]["decode_weight_bytes"], bench[1]["decode_weight_bytes"]);
}

TEST(Cli, DemoCommandFromTheReadmeRuns) {
  const RunResult r =
      RunPlm({"run", "--model", std::string(PLM_SOURCE_DIR) + "/models/plm-tiny", "--image",
              std::string(PLM_SOURCE_DIR) + "/assets/demo.png", "--prompt",
              "What is in this picture?", "--max-tokens", "4", "--quiet"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_TRUE(r.err.empty()) << r.err;
}

}  // namespace
}  // namespace plm
