// Pipeline: processor + model + generation in one object — the "ask a question about these
// images" entry point the CLI and the server are built on.
//
//   auto pipe = plm::Pipeline::FromPretrained("path/to/Perception-LM-1B");
//   plm::ChatRequest req;
//   req.conversation = {{"user", {plm::ContentPart::Image("cat.jpg"),
//                                 plm::ContentPart::Text("Describe it.")}}};
//   req.generation = pipe->default_generation();
//   plm::ChatCallbacks cb;
//   cb.on_text = [](const std::string& piece) { std::fputs(piece.c_str(), stdout); return true; };
//   plm::ChatResult r = pipe->Chat(req, cb);
//
// Thread-safety: a loaded Pipeline is immutable; Chat, Prepare and CountPromptTokens may run
// concurrently from any number of threads (each call has its own cache and decoder).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "plm/generation.h"
#include "plm/model.h"
#include "plm/processor.h"

namespace plm {

struct ChatRequest {
  Conversation conversation;
  MediaOptions media;
  GenerationConfig generation;  // start from Pipeline::default_generation()
  std::vector<std::string>
      stop_strings;  // generation stops when the text contains one (not included)
};

struct ChatTimings {
  double preprocess_s = 0;  // decode + resize + tokenize
  double vision_s = 0;      // vision tower + projector
  double prefill_s = 0;
  double decode_s = 0;
};

struct ChatResult {
  std::string text;
  std::vector<int64_t> tokens;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t image_tiles = 0, video_frames = 0;
  StopReason stop_reason = StopReason::kLength;
  ChatTimings timings;
};

struct ChatCallbacks {
  // Streamed text pieces (complete UTF-8); return false to stop generating.
  std::function<bool(const std::string& piece)> on_text;
  // Progress: ("preprocess", 0, 1), ("vision", tiles done, total tiles), ("prefill", 0, prompt
  // tokens) before the prompt's forward pass.
  std::function<void(const std::string& stage, int64_t done, int64_t total)> on_progress;
};

class Pipeline {
 public:
  static std::unique_ptr<Pipeline> FromPretrained(const std::string& model_dir,
                                                  const LoadOptions& options = {});
  ~Pipeline();

  const PerceptionLMForConditionalGeneration& model() const { return *model_; }
  const PerceptionLMProcessor& processor() const { return *processor_; }
  // The checkpoint's generation_config.json (greedy for PerceptionLM).
  const GenerationConfig& default_generation() const { return generation_; }

  // Prompt tokens the request will cost, before any pixel work.
  int64_t CountPromptTokens(const ChatRequest& request) const;

  // What Chat does before the model runs, for callers that drive the model themselves (the
  // serving engine): checks the context from media headers only (kContextOverflow before any
  // pixel work), then decodes and preprocesses the media and tokenizes the prompt (batch 1).
  // `preprocess_s` (optional) receives the time spent.
  ProcessorOutputs Prepare(const ChatRequest& request, double* preprocess_s = nullptr) const;

  // Runs one request. Throws kContextOverflow (before any heavy work) when the prompt plus
  // max_new_tokens does not fit the model's context.
  ChatResult Chat(const ChatRequest& request, const ChatCallbacks& callbacks = {}) const;

 private:
  Pipeline() = default;
  std::unique_ptr<PerceptionLMForConditionalGeneration> model_;
  std::unique_ptr<PerceptionLMProcessor> processor_;
  GenerationConfig generation_;
};

}  // namespace plm
