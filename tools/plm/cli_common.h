// Options and helpers shared by the sub-commands that run the model (run, chat, serve).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/json.h"
#include "plm/pipeline.h"

namespace plm::cli {

// Progress and status lines on stderr. By default only when stderr is a terminal; --quiet
// silences them, --verbose prints them (as plain lines) even when it is not.
class Progress {
 public:
  Progress(bool quiet, bool verbose);
  // A transient line (overwritten by the next). On a terminal, updates closer than 50 ms to the
  // previous one are dropped unless `force` (the first line of a new stage).
  void Status(const std::string& text, bool force = false);
  void Clear();                        // erases the transient line before normal output
  void Note(const std::string& text);  // a permanent line
  std::function<void(const std::string&, int64_t, int64_t)> StageCallback();
  void Summary(const ChatResult& r);  // timings after a run

 private:
  bool enabled_, tty_;
  bool dirty_ = false;
  std::string stage_;  // the stage of the last StageCallback line
  std::chrono::steady_clock::time_point last_;
};

struct ModelArgs {
  std::string model;
  std::string compute = "auto";  // auto: the checkpoint config's dtype (StoredComputeType)
  int threads = 0;
  bool quiet = false;
  bool verbose = false;
  bool mmap = false;                      // LoadOptions::huge_pages = false
  CLI::Option* compute_option = nullptr;  // set by Register: was --dtype given?
  void Register(CLI::App* app);
};

struct SamplingArgs {
  int64_t max_tokens = -1;  // -1: the generation config's value or 256
  std::optional<float> temperature, top_p, min_p, repeat_penalty;
  std::optional<int64_t> top_k;
  std::optional<uint64_t> seed;
  void Register(CLI::App* app);
  // The model's defaults with the given flags applied (any sampling flag turns sampling on,
  // except --temperature 0, which forces greedy).
  GenerationConfig Apply(GenerationConfig base) const;
};

struct MediaArgs {
  std::optional<int> max_tiles;
  std::optional<int64_t> frames;
  std::optional<double> fps;
  void Register(CLI::App* app);
  MediaOptions ToOptions(int threads) const;
};

std::unique_ptr<Pipeline> LoadPipeline(const ModelArgs& args, Progress& progress);
Json ResultJson(const ChatResult& r);

}  // namespace plm::cli
