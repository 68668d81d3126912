#include "cli_common.h"

#include <unistd.h>

#include <cstdio>
#include <random>

#include "model_resolver.h"

namespace plm::cli {

Progress::Progress(bool quiet, bool verbose)
    : enabled_(!quiet && (verbose || ::isatty(STDERR_FILENO))), tty_(::isatty(STDERR_FILENO)) {}

void Progress::Status(const std::string& text, bool force) {
  if (!enabled_) return;
  if (tty_) {
    // Throttle redraws; a terminal does not need more than ~20 updates a second.
    const auto now = std::chrono::steady_clock::now();
    if (!force && dirty_ && now - last_ < std::chrono::milliseconds(50)) return;
    last_ = now;
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    dirty_ = true;
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

void Progress::Clear() {
  if (dirty_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    dirty_ = false;
  }
}

void Progress::Note(const std::string& text) {
  if (!enabled_) return;
  Clear();
  std::fprintf(stderr, "%s\n", text.c_str());
}

std::function<void(const std::string&, int64_t, int64_t)> Progress::StageCallback() {
  return [this](const std::string& stage, int64_t done, int64_t total) {
    const bool first = stage != stage_;
    stage_ = stage;
    if (stage == "vision") {
      // Non-terminals get only the first and last line so logs stay short.
      if (!tty_ && done != 1 && done != total) return;
      Status("encoding images: " + std::to_string(done) + "/" + std::to_string(total) + " tiles",
             first || done == total);
    } else if (stage == "preprocess") {
      Status("preprocessing media and prompt...", first);
    } else if (stage == "prefill") {
      Status("prefill: " + std::to_string(total) + " prompt tokens...", first);
    } else {
      Status(stage + "...", first);
    }
  };
}

void Progress::Summary(const ChatResult& r) {
  if (!enabled_) return;
  char buf[512];
  const double tps = r.timings.decode_s > 0 ? r.completion_tokens / r.timings.decode_s : 0;
  std::snprintf(
      buf, sizeof buf,
      "[%lld prompt tokens (%lld image tiles, %lld video frames), %lld generated, stop: %s]\n"
      "[preprocess %.2fs | vision %.2fs | prefill %.2fs (%.1f tok/s) | decode %.2fs (%.1f tok/s)]",
      (long long)r.prompt_tokens, (long long)r.image_tiles, (long long)r.video_frames,
      (long long)r.completion_tokens, StopReasonName(r.stop_reason), r.timings.preprocess_s,
      r.timings.vision_s, r.timings.prefill_s,
      r.timings.prefill_s > 0 ? r.prompt_tokens / r.timings.prefill_s : 0.0, r.timings.decode_s,
      tps);
  Note(buf);
}

void ModelArgs::Register(CLI::App* app) {
  app->add_option("--model,-m", model,
                  "Model folder (Hugging Face layout) or Hub id, e.g. facebook/Perception-LM-1B")
      ->required();
  compute_option =
      app->add_option("--dtype", compute,
                      "Weight/compute format: auto (default: the checkpoint's dtype, bf16 for "
                      "a bfloat16 checkpoint, else f32), f32 (reference), bf16, q8, q4 (a `plm "
                      "quantize` folder runs in its own format)")
          ->check(CLI::IsMember({"auto", "f32", "bf16", "q8", "q4"}));
  app->add_option("--threads,-t", threads, "Threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app->add_flag(
      "--mmap", mmap,
      "Use a `plm quantize` folder's matrices in the file mapping (instant load) instead of "
      "copying them into huge pages (faster decode)");
  app->add_flag("--quiet,-q", quiet, "No progress or timing on stderr");
  app->add_flag("--verbose", verbose,
                "Progress and timing on stderr even when it is not a terminal");
}

void SamplingArgs::Register(CLI::App* app) {
  app->add_option("--max-tokens,-n", max_tokens, "Maximum new tokens (default 256)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--temperature", temperature,
                  "Sampling temperature (0 = greedy; default: greedy)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--top-k", top_k, "Keep the k most likely tokens (0 = off)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--top-p", top_p, "Nucleus sampling mass (1 = off)")->check(CLI::Range(0.0, 1.0));
  app->add_option("--min-p", min_p, "Drop tokens below min-p x the top probability (0 = off)")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--repeat-penalty", repeat_penalty, "Repetition penalty (1 = off)")
      ->check(CLI::PositiveNumber);
  app->add_option("--seed", seed, "Random seed for sampling (same seed, same output)");
}

GenerationConfig SamplingArgs::Apply(GenerationConfig g) const {
  g.max_new_tokens = max_tokens >= 0 ? max_tokens : 256;
  const bool any = temperature || top_k || top_p || min_p;
  if (any) g.do_sample = true;
  if (temperature) g.temperature = *temperature;
  if (temperature && *temperature == 0.0f) g.do_sample = false;
  if (top_k) g.top_k = *top_k;
  if (top_p) g.top_p = *top_p;
  if (min_p) g.min_p = *min_p;
  if (repeat_penalty) g.repetition_penalty = *repeat_penalty;
  g.seed = seed ? *seed : std::random_device{}();
  return g;
}

void MediaArgs::Register(CLI::App* app) {
  app->add_option("--max-tiles", max_tiles,
                  "Maximum image tiles besides the thumbnail (fewer = faster)")
      ->check(CLI::Range(1, 256));
  auto* f = app->add_option("--frames", frames, "Sample this many video frames uniformly")
                ->check(CLI::PositiveNumber);
  auto* r =
      app->add_option("--fps", fps, "Sample video frames at this rate")->check(CLI::PositiveNumber);
  f->excludes(r);
}

MediaOptions MediaArgs::ToOptions(int threads) const {
  MediaOptions m;
  m.max_num_tiles = max_tiles;
  m.num_frames = frames;
  m.fps = fps;
  m.threads = threads;
  return m;
}

std::unique_ptr<Pipeline> LoadPipeline(const ModelArgs& args, Progress& progress) {
  const std::string dir =
      ResolveModel(args.model, [&](const std::string& s) { progress.Status(s); });
  LoadOptions lo;
  lo.compute = args.compute == "auto"
                   ? StoredComputeType(PerceptionLMConfig::FromFile(dir + "/config.json"))
                   : ParseComputeType(args.compute);
  lo.threads = args.threads;
  lo.huge_pages = !args.mmap;
  lo.on_progress = [&](const std::string& s) { progress.Status(s + "..."); };
  const auto t0 = std::chrono::steady_clock::now();
  auto p = Pipeline::FromPretrained(dir, lo);
  progress.Clear();
  char buf[64];
  std::snprintf(buf, sizeof buf, " (%s) in %.1f s", ComputeTypeName(p->model().compute()),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  progress.Note("loaded " + dir + buf);
  if (args.compute_option != nullptr && args.compute_option->count() > 0 &&
      args.compute != "auto" && p->model().compute() != lo.compute)
    if (!args.quiet)  // even when progress is off (stderr not a terminal): a flag was ignored
      std::fprintf(stderr,
                   "note: %s is stored as %s (plm quantize) and runs as %s, not --dtype %s\n",
                   dir.c_str(), ComputeTypeName(p->model().compute()),
                   ComputeTypeName(p->model().compute()), args.compute.c_str());
  return p;
}

Json ResultJson(const ChatResult& r) {
  const double tps = r.timings.decode_s > 0 ? r.completion_tokens / r.timings.decode_s : 0;
  return Json{{"text", r.text},
              {"prompt_tokens", r.prompt_tokens},
              {"completion_tokens", r.completion_tokens},
              {"image_tiles", r.image_tiles},
              {"video_frames", r.video_frames},
              {"stop_reason", StopReasonName(r.stop_reason)},
              {"tokens", r.tokens},
              {"timings",
               {{"preprocess_s", r.timings.preprocess_s},
                {"vision_s", r.timings.vision_s},
                {"prefill_s", r.timings.prefill_s},
                {"decode_s", r.timings.decode_s},
                {"prefill_tok_per_s",
                 r.timings.prefill_s > 0 ? r.prompt_tokens / r.timings.prefill_s : 0.0},
                {"decode_tok_per_s", tps}}}};
}

}  // namespace plm::cli
