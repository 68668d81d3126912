// `plm bench --config DIR --dtype bf16|q8|q4|f32 --threads N [--json]`: speed of a random-weight
// model of any real shape. The checkpoint (bf16, as shipped) is generated from config.json in a
// child process and cached; then vision s/tile, projector, prefill tok/s, decode tok/s at
// several contexts, weight+KV bytes per decoded token, the measured read bandwidth and the peak
// RSS are reported as a table or one JSON object.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bandwidth_probe.h"
#include "commands.h"
#include "core/attention.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/phase_times.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "plm/config.h"
#include "plm/error.h"
#include "plm/huge_page_allocator.h"
#include "plm/model.h"

namespace plm::cli {

namespace {

struct BenchArgs {
  std::string config, dtype = "bf16", cache_dir, model;
  int threads = 0;
  bool json = false;
  int64_t tiles = 2;
  std::vector<int64_t> prefill = {512, 2048, 9472};
  int64_t decode_tokens = 16;
  int64_t prefill_chunk = LoadOptions{}.prefill_chunk;
  bool skip_vision = false;
  bool mmap = false;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Tensor names and shapes of a checkpoint with this config (plm-spec.md §1.3).
std::vector<std::pair<std::string, std::vector<int64_t>>> Shapes(const PerceptionLMConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  const VisionConfig& v = c.vision;
  const int64_t D = v.embed_dim, ps = v.patch_size, H = v.mlp_hidden();
  const std::string vp = "model.vision_tower.timm_model.";
  if (v.class_token) out.push_back({vp + "cls_token", {1, 1, D}});
  out.push_back({vp + "pos_embed", {1, v.num_prefix_tokens() + v.num_patches(), D}});
  out.push_back({vp + "patch_embed.proj.weight", {D, 3, ps, ps}});
  if (!v.use_pre_transformer_norm) out.push_back({vp + "patch_embed.proj.bias", {D}});
  if (v.use_pre_transformer_norm) {
    out.push_back({vp + "norm_pre.weight", {D}});
    out.push_back({vp + "norm_pre.bias", {D}});
  }
  for (int64_t i = 0; i < v.depth; ++i) {
    const std::string b = vp + "blocks." + std::to_string(i) + ".";
    for (const char* n : {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"})
      out.push_back({b + n, {D}});
    out.push_back({b + "attn.qkv.weight", {3 * D, D}});
    if (v.qkv_bias) out.push_back({b + "attn.qkv.bias", {3 * D}});
    out.push_back({b + "attn.proj.weight", {D, D}});
    out.push_back({b + "attn.proj.bias", {D}});
    out.push_back({b + "mlp.fc1.weight", {H, D}});
    out.push_back({b + "mlp.fc1.bias", {H}});
    out.push_back({b + "mlp.fc2.weight", {D, H}});
    out.push_back({b + "mlp.fc2.bias", {D}});
    if (v.init_values > 0) {
      out.push_back({b + "gamma_1", {D}});
      out.push_back({b + "gamma_2", {D}});
    }
  }
  if (v.use_post_transformer_norm) {
    out.push_back({vp + "norm.weight", {D}});
    out.push_back({vp + "norm.bias", {D}});
  }
  const TextConfig& t = c.text;
  const int64_t d = t.hidden_size, hd = t.head_dim;
  const std::string pp = "model.multi_modal_projector.";
  out.push_back({pp + "linear_1.weight", {d, D}});
  out.push_back({pp + "linear_1.bias", {d}});
  out.push_back({pp + "linear_2.weight", {d, d}});
  out.push_back({pp + "linear_2.bias", {d}});
  const std::string lp = "model.language_model.";
  out.push_back({lp + "embed_tokens.weight", {t.vocab_size, d}});
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const std::string l = lp + "layers." + std::to_string(i) + ".";
    out.push_back({l + "self_attn.q_proj.weight", {t.num_attention_heads * hd, d}});
    out.push_back({l + "self_attn.k_proj.weight", {t.num_key_value_heads * hd, d}});
    out.push_back({l + "self_attn.v_proj.weight", {t.num_key_value_heads * hd, d}});
    out.push_back({l + "self_attn.o_proj.weight", {d, t.num_attention_heads * hd}});
    out.push_back({l + "mlp.gate_proj.weight", {t.intermediate_size, d}});
    out.push_back({l + "mlp.up_proj.weight", {t.intermediate_size, d}});
    out.push_back({l + "mlp.down_proj.weight", {d, t.intermediate_size}});
    out.push_back({l + "input_layernorm.weight", {d}});
    out.push_back({l + "post_attention_layernorm.weight", {d}});
  }
  out.push_back({lp + "norm.weight", {d}});
  if (!t.tie_word_embeddings) out.push_back({"lm_head.weight", {t.vocab_size, d}});
  return out;
}

// Writes a random bf16 checkpoint: norms/LayerScale 1 (gamma 0.1), biases 0, matrices uniform
// with std 0.02 (embeddings 1), from a fixed-seed xorshift generator.
void WriteRandomCheckpoint(const PerceptionLMConfig& cfg, const std::string& dir) {
  ::mkdir(dir.c_str(), 0755);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  std::map<std::string, TensorData> tensors;
  for (const auto& [name, shape] : Shapes(cfg)) {
    TensorData t;
    t.dtype = DType::kBF16;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    t.bytes.resize(static_cast<size_t>(n) * 2);
    auto* p = reinterpret_cast<uint16_t*>(t.bytes.data());
    const bool vec = shape.size() == 1;
    const bool bias = name.find("bias") != std::string::npos;
    const bool gamma = name.find("gamma") != std::string::npos;
    const float std = name.find("embed") != std::string::npos ? 1.0f : 0.02f;
    const float amp = std * 1.7320508f;  // uniform(-a, a) has std a / sqrt(3)
    for (int64_t i = 0; i < n; ++i) {
      float v;
      if (vec) {
        v = bias ? 0.0f : gamma ? 0.1f : 1.0f;
      } else {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v = amp * (static_cast<float>(s >> 40) / static_cast<float>(1 << 23) * 2.0f - 1.0f);
      }
      p[i] = F32ToBf16(v);
    }
    tensors.emplace(name, std::move(t));
  }
  WriteSafetensors(dir + "/model.safetensors", tensors);
  std::ofstream(dir + "/config.json") << cfg.ToJsonString();
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Generates in a child so the generator's memory does not count in this process's peak RSS.
void EnsureCheckpoint(const PerceptionLMConfig& cfg, const std::string& dir) {
  if (Exists(dir + "/complete")) return;
  std::fprintf(stderr, "bench: writing a random bf16 checkpoint to %s\n", dir.c_str());
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(ErrorCode::kIo, "fork failed");
  if (pid == 0) {
    try {
      WriteRandomCheckpoint(cfg, dir);
      std::ofstream(dir + "/complete") << "ok\n";
      ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorCode::kIo, "could not write the random checkpoint to " + dir);
}

// Weight bytes one decode step streams (every decoder Linear and the LM head).
double DecodeWeightBytes(const PerceptionLMConfig& c, ComputeType ct) {
  const TextConfig& t = c.text;
  const double d = static_cast<double>(t.hidden_size), hd = static_cast<double>(t.head_dim);
  const double per_layer_k_d = (t.num_attention_heads * hd + 2 * t.num_key_value_heads * hd) * d +
                               d * t.num_attention_heads * hd;
  const double mlp = 3.0 * d * static_cast<double>(t.intermediate_size);
  const double n = static_cast<double>(t.num_hidden_layers) * (per_layer_k_d + mlp) +
                   static_cast<double>(t.vocab_size) * d;
  switch (ct) {
    case ComputeType::kF32:
      return 4 * n;
    case ComputeType::kBF16:
      return 2 * n;
    case ComputeType::kQ8:
      return n * (1.0 + 4.0 / d);  // + one f32 scale per row (approx.)
    case ComputeType::kQ4:
      return n * (0.5 + 2.0 / 32.0);  // + one f16 scale per block of 32
  }
  return n;
}

int64_t PeakRss() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

int Run(const BenchArgs& a) {
  const PerceptionLMConfig cfg = PerceptionLMConfig::FromFile(a.config + "/config.json");
  const ComputeType ct = ParseComputeType(a.dtype);
  std::string dir = a.model;
  if (dir.empty()) {
    std::string name = a.config;
    while (!name.empty() && name.back() == '/') name.pop_back();
    name = name.substr(name.rfind('/') + 1);
    dir = (a.cache_dir.empty() ? std::string("/tmp") : a.cache_dir) + "/plm-bench-" + name;
    EnsureCheckpoint(cfg, dir);
  }
  const int threads = a.threads > 0 ? a.threads : DefaultThreadCount();
  BandwidthProbe probe(threads);
  double bandwidth = probe.Measure(5);  // the best probe of the run

  LoadOptions opt;
  opt.compute = ct;
  opt.threads = threads;
  opt.prefill_chunk = a.prefill_chunk;
  opt.huge_pages = !a.mmap;
  double t0 = Now();
  auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, opt);
  const double load_s = Now() - t0;
  const TextConfig& tc = cfg.text;
  // A `plm quantize` folder runs in its stored format whatever --dtype says: report that one.
  const std::string dtype = ComputeTypeName(model->compute());
  if (dtype != a.dtype)
    std::fprintf(stderr, "note: %s is stored as %s (plm quantize); measuring %s, not --dtype %s\n",
                 dir.c_str(), dtype.c_str(), dtype.c_str(), a.dtype.c_str());

  nlohmann::json j;
  j["config"] = a.config;
  j["dtype"] = dtype;
  j["threads"] = threads;
  j["weights_in_huge_pages"] = !a.mmap;
  // The OpenMP waits in effect (main() sets a bounded spin unless the user chose otherwise).
  const char* omp_wait = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  j["omp_wait_policy"] = omp_wait != nullptr ? omp_wait : "";
  j["gomp_spincount"] = spin != nullptr ? spin : "";
  j["load_s"] = load_s;
  j["prefill_chunk"] = a.prefill_chunk;
  // Which many-query attention kernel prefill and the vision tower run on this CPU (the int8
  // tower, q8 and q4, with int8 scores where the CPU allows them).
  const ComputeType runs = model->compute();  // (a q8/q4 folder runs its own format)
  j["cpu_kernels"] = KernelSetName();
  j["attention_kernel"] = ManyQueryKernelName(runs != ComputeType::kF32);
  j["vision_attention_kernel"] = ManyQueryKernelName(
      runs != ComputeType::kF32, runs == ComputeType::kQ8 || runs == ComputeType::kQ4);

  // Vision tower + projector.
  if (!a.skip_vision && a.tiles > 0) {
    const int64_t per = 3 * cfg.vision.img_height * cfg.vision.img_width;
    std::vector<float> pix(static_cast<size_t>(a.tiles * per));
    uint32_t s = 1;
    for (auto& p : pix) {
      s = s * 1664525u + 1013904223u;
      p = static_cast<float>(s >> 8) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    }
    // One warm-up tile: the first image builds the tower's converted / packed matrices (not done
    // at load), oneDNN generates its kernels, pages fault in. Reported on its own.
    t0 = Now();
    model->GetImageFeatures({pix.data(), 1});
    j["vision_first_tile_s"] = Now() - t0;
    double tower_end = 0;
    t0 = Now();
    model->GetImageFeatures({pix.data(), a.tiles}, nullptr, false,
                            [&](int64_t done, int64_t total) {
                              if (done == total) tower_end = Now();
                            });
    const double t1 = Now();
    j["vision_tiles"] = a.tiles;
    j["vision_s_per_tile"] = (tower_end - t0) / static_cast<double>(a.tiles);
    j["projector_s_per_tile"] = (t1 - tower_end) / static_cast<double>(a.tiles);
  }

  // Prefill at each length, then decode from that context.
  nlohmann::json pre = nlohmann::json::object(), dec = nlohmann::json::object(),
                 bytes = nlohmann::json::object(), frac = nlohmann::json::object(),
                 near_bw = nlohmann::json::object(), segments = nlohmann::json::object(),
                 phases = nlohmann::json::object(), stable = nlohmann::json::object();
  const double wbytes = DecodeWeightBytes(cfg, model->compute());
  double kv_bytes = 0;  // the largest KV cache in use (bytes of keys and values)
  bool warmed = false;
  for (int64_t L : a.prefill) {
    if (L + a.decode_tokens > tc.max_position_embeddings) continue;
    std::vector<int64_t> ids(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) ids[i] = 1000 + (i * 7919) % 100000;
    ForwardInputs in;
    in.input_ids = ids;
    in.batch = 1;
    in.len = L;
    in.logits_to_keep = 1;
    if (!warmed) {  // warm-up: kernel generation for the shapes used below
      ForwardInputs w = in;
      w.len = std::min<int64_t>(L, 64);
      w.input_ids.resize(static_cast<size_t>(w.len));
      model->Forward(w);
      warmed = true;
    }
    KVCache cache = model->NewCache(1, L + a.decode_tokens);
    t0 = Now();
    model->Forward(in, &cache);
    const double dt = Now() - t0;
    pre[std::to_string(L)] = static_cast<double>(L) / dt;
    ForwardInputs step;
    step.batch = 1;
    step.len = 1;
    step.logits_to_keep = 1;
    step.input_ids = {128000};
    model->Forward(step, &cache);  // first step not timed
    // This machine's read bandwidth can move by half within seconds (shared memory system): the
    // steps run in segments of kDecodeSegment with a probe (best of kSegmentPasses reads of 1 GiB)
    // before, between and after them; each segment is related to the better of its two probes,
    // and the bandwidth reported is their average weighted by the segments' times.
    constexpr int64_t kDecodeSegment = 8;
    constexpr int kSegmentPasses = 2;
    // A segment whose two probes differ by more than 10 % ran while the bandwidth changed regime
    // (it swings between ~45 and ~80 GB/s here): its own bandwidth is not known. Such segments
    // stay in every figure above; `decode_bandwidth_fraction_stable` leaves them out.
    constexpr double kProbesAgree = 0.9;
    const int64_t steps = a.decode_tokens - 1;
    double before = probe.Measure(kSegmentPasses), decode_s = 0, bw_s = 0;
    bandwidth = std::max(bandwidth, before);
    nlohmann::json segs = nlohmann::json::array();
    EnablePhaseTimes(true);  // where each step's time goes (summed over the timed steps only)
    for (int64_t done = 0; done < steps;) {
      const int64_t n = std::min(kDecodeSegment, steps - done);
      t0 = Now();
      for (int64_t i = 0; i < n; ++i) model->Forward(step, &cache);
      const double dt = Now() - t0;
      const double after = probe.Measure(kSegmentPasses);
      bandwidth = std::max(bandwidth, after);
      const double bw = std::max(before, after);
      decode_s += dt;
      bw_s += dt * bw;
      segs.push_back({{"tokens", n},
                      {"seconds", dt},
                      {"read_bandwidth_bytes_per_s", bw},
                      {"probe_before_bytes_per_s", before},
                      {"probe_after_bytes_per_s", after},
                      {"probes_agree", std::min(before, after) >= kProbesAgree * bw}});
      before = after;
      done += n;
    }
    EnablePhaseTimes(false);
    {
      nlohmann::json ph = nlohmann::json::object();
      double in_phases = 0;
      const auto secs = PhaseSeconds();
      for (size_t i = 0; i < kPhaseCount; ++i) {
        ph[PhaseName(static_cast<Phase>(i))] = secs[i] / static_cast<double>(steps);
        in_phases += secs[i];
      }
      ph["other"] = std::max(0.0, decode_s - in_phases) / static_cast<double>(steps);
      phases[std::to_string(L)] = std::move(ph);
    }
    const double tps = static_cast<double>(steps) / decode_s;
    const double bw_near = bw_s / decode_s;
    near_bw[std::to_string(L)] = bw_near;
    // Keys and values of every layer over `positions` (bf16 cache on the reduced-precision
    // paths, float32 on the f32 path).
    auto kv_bytes_at = [&](int64_t positions) {
      return 2.0 *
             static_cast<double>(tc.num_hidden_layers * tc.num_key_value_heads * tc.head_dim *
                                 positions) *
             (cache.type() == KVType::kBF16 ? 2.0 : 4.0);
    };
    const double kv = kv_bytes_at(L + a.decode_tokens / 2);  // read per step, on average
    kv_bytes = std::max(kv_bytes, kv_bytes_at(L + a.decode_tokens));
    dec[std::to_string(L)] = tps;
    bytes[std::to_string(L)] = wbytes + kv;
    frac[std::to_string(L)] = (wbytes + kv) * tps / bw_near;
    double stable_tokens = 0, stable_s = 0, stable_bw_s = 0;
    for (auto& s : segs) {
      const double tokens = s["tokens"].get<double>(), dt = s["seconds"].get<double>(),
                   bw = s["read_bandwidth_bytes_per_s"].get<double>();
      s["bandwidth_fraction"] = (wbytes + kv) * tokens / dt / bw;
      if (s["probes_agree"].get<bool>()) {
        stable_tokens += tokens;
        stable_s += dt;
        stable_bw_s += dt * bw;
      }
    }
    // The same ratio as decode_bandwidth_fraction over the steady segments only (null if none).
    stable[std::to_string(L)] =
        stable_s > 0 ? nlohmann::json((wbytes + kv) * stable_tokens / stable_bw_s) : nullptr;
    segments[std::to_string(L)] = std::move(segs);
  }
  j["prefill_tok_per_s"] = pre;
  j["decode_tok_per_s"] = dec;
  j["decode_bytes_per_token"] = bytes;
  j["decode_bandwidth_fraction"] = frac;
  j["decode_bandwidth_fraction_stable"] = stable;
  j["decode_read_bandwidth_bytes_per_s"] = near_bw;
  j["decode_segments"] = segments;
  // Seconds per decode step in each phase of the forward pass (core/phase_times.h).
  j["decode_phase_seconds_per_token"] = phases;
  j["decode_weight_bytes"] = wbytes;
  j["read_bandwidth_bytes_per_s"] = bandwidth;
  j["peak_rss_bytes"] = PeakRss();
  // What the run keeps resident: every weight copy the model owns (converted or quantized at
  // load, packed), the text weights it reads in place from the mapped files, the vision ones too
  // when tiles ran, plus the KV cache.
  const auto wb = model->weight_bytes();
  const bool vision_ran = !a.skip_vision && a.tiles > 0;
  const double resident = static_cast<double>(wb.vision.owned + wb.text.total() +
                                              (vision_ran ? wb.vision.in_place : 0));
  j["weight_bytes"] = resident;
  j["weight_bytes_owned"] = static_cast<double>(wb.vision.owned + wb.text.owned);
  j["kv_cache_bytes"] = kv_bytes;
  j["peak_rss_over_weights_kv"] = static_cast<double>(PeakRss()) / (resident + kv_bytes);

  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("plm bench  config=%s  dtype=%s  threads=%d\n", a.config.c_str(), dtype.c_str(),
              threads);
  std::printf("  load                 %8.2f s\n", load_s);
  std::printf("  read bandwidth       %8.2f GB/s\n", bandwidth / 1e9);
  std::printf("  kernels              %8s\n", j["cpu_kernels"].get<std::string>().c_str());
  std::printf("  attention kernel     %8s (vision: %s)\n",
              j["attention_kernel"].get<std::string>().c_str(),
              j["vision_attention_kernel"].get<std::string>().c_str());
  if (j.contains("vision_s_per_tile")) {
    std::printf("  vision               %8.3f s/tile (%lld tiles)\n",
                j["vision_s_per_tile"].get<double>(), static_cast<long long>(a.tiles));
    std::printf("  projector            %8.4f s/tile\n", j["projector_s_per_tile"].get<double>());
    std::printf("  first tile           %8.3f s (one-time set-up included)\n",
                j["vision_first_tile_s"].get<double>());
  }
  std::printf("  %-8s %12s %12s %16s %10s %10s\n", "context", "prefill t/s", "decode t/s",
              "bytes/token", "of BW", "steady");
  for (auto& [k, v] : pre.items()) {
    // "steady": the fraction over the segments whose probes agree ("-" when none did).
    char steady[16] = "-";
    if (!stable[k].is_null())
      std::snprintf(steady, sizeof steady, "%.0f%%", 100 * stable[k].get<double>());
    std::printf("  %-8s %12.1f %12.2f %16.3e %9.0f%% %10s\n", k.c_str(), v.get<double>(),
                dec[k].get<double>(), bytes[k].get<double>(), 100 * frac[k].get<double>(), steady);
  }
  for (auto& [k, v] : phases.items()) {
    std::printf("  decode step at %s (ms):", k.c_str());
    for (size_t i = 0; i <= kPhaseCount; ++i) {
      const char* name = i < kPhaseCount ? PhaseName(static_cast<Phase>(i)) : "other";
      std::printf(" %s %.2f", name, 1e3 * v[name].get<double>());
    }
    std::printf("\n");
  }
  std::printf("  peak RSS             %8.2f GiB (%.2fx the weights + KV cache in use: %.2f GiB)\n",
              static_cast<double>(PeakRss()) / (1024.0 * 1024.0 * 1024.0),
              j["peak_rss_over_weights_kv"].get<double>(),
              (resident + kv_bytes) / (1024.0 * 1024.0 * 1024.0));
  return 0;
}

}  // namespace

Command RegisterBench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Speed of a random-weight model of a real shape (vision, prefill, decode, RSS)");
  sub->add_option("--config", a->config, "folder with the config.json to build (random weights)")
      ->required();
  sub->add_option("--dtype", a->dtype, "f32, bf16, q8 or q4")->default_val("bf16");
  sub->add_option("--threads", a->threads, "threads (default: all cores)");
  sub->add_flag("--json", a->json, "print one JSON object");
  sub->add_option("--tiles", a->tiles, "vision tiles to time")->default_val(2);
  sub->add_option("--prefill", a->prefill, "prompt lengths (each followed by decode)")
      ->delimiter(',');
  sub->add_option("--decode-tokens", a->decode_tokens,
                  "tokens decoded per context (the first is not timed)")
      ->default_val(16)
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  sub->add_option("--prefill-chunk", a->prefill_chunk,
                  "prompt tokens per decoder pass of a long prefill (0: one pass)")
      ->default_val(a->prefill_chunk);
  sub->add_flag("--skip-vision", a->skip_vision, "do not time the vision tower");
  sub->add_flag(
      "--mmap", a->mmap,
      "use a `plm quantize` folder's matrices in place instead of copying them into huge pages");
  sub->add_option("--cache-dir", a->cache_dir, "where the random checkpoint is kept (/tmp)");
  sub->add_option("--model", a->model, "use this checkpoint folder instead of random weights");
  return [a] { return Run(*a); };
}

}  // namespace plm::cli
