// Text generation with a PerceptionLM model (HF `generate`): greedy (the checkpoints' default)
// or sampling, stop ids and stop strings, per-token logprobs, batched with left padding exactly as
// Hugging Face `generate` does.
//
//   auto proc = plm::PerceptionLMProcessor::FromPretrained(dir);
//   auto model = plm::PerceptionLMForConditionalGeneration::FromPretrained(dir);
//   plm::ProcessorOutputs in = proc->Process({conversation_a, conversation_b});  // left padded
//   plm::GenerationConfig gc = plm::GenerationConfig::FromDirectory(dir);
//   gc.max_new_tokens = 32;
//   plm::GenerateOptions opt;
//   opt.top_logprobs = 5;          // GenerateOutput::logprobs
//   opt.stop_strings = {"\n\n"};   // needs the processor to decode
//   opt.processor = proc.get();
//   plm::GenerateOutput out = plm::Generate(*model, in.AsForwardInputs(), gc, opt);
//
// Thread-safety: Generate may run concurrently on one model from several threads (each call owns
// its KV cache and samplers).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "plm/model.h"

namespace plm {

class PerceptionLMProcessor;

struct GenerationConfig {
  int64_t max_new_tokens = 256;
  bool do_sample = false;
  float temperature = 1.0f;
  int64_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off (HF's CTRL-style penalty)
  uint64_t seed = 0;
  std::vector<int64_t> eos_token_ids = {128001, 128009};
  int64_t pad_token_id = -1;  // -1: first eos id, as HF

  // Reads generation_config.json (missing file → defaults; bad JSON → plm::Error).
  static GenerationConfig FromDirectory(const std::string& model_dir);
  static GenerationConfig FromFile(const std::string& path);
};

// Why a row stopped. kEos: an eos or extra stop id; kStopString: a stop string (both are "stop"
// to OpenAI clients); kLength: max_new_tokens; kCallback: on_token returned false.
enum class StopReason { kEos, kLength, kCallback, kStopString };
const char* StopReasonName(StopReason r);

// A token and its log-probability.
struct TokenLogprob {
  int64_t token = 0;
  float logprob = 0;
};

// The log-probabilities of one generated token: the chosen token and the `top_n` most likely
// tokens of that step (OpenAI's `logprobs` / `top_logprobs`).
struct StepLogprobs {
  int64_t token = 0;
  float logprob = 0;
  std::vector<TokenLogprob> top;  // most likely first; equal logprobs: lower id first
};

// log_softmax(logits)[token] and the `top_n` (token, logprob) pairs of a logits row, computed in
// double precision (`top_n` <= 0: none; more than the vocabulary: all). Throws kInvalidArgument
// when `token` is outside the row. Generate uses it for GenerateOptions::top_logprobs; servers can
// call it on any logits row.
StepLogprobs ComputeLogprobs(std::span<const float> logits, int64_t token, int top_n);

struct GenerateOptions {
  bool output_scores = false;  // keep each step's processed logits
  // -1: no logprobs. n >= 0: GenerateOutput::logprobs gets each new token's log-probability under
  // the model (log_softmax of the raw logits, before repetition penalty, temperature, top-k/p)
  // with the n most likely alternatives.
  int top_logprobs = -1;
  // Stop ids besides config.eos_token_ids (HF passes them as more eos_token_id entries): a row
  // ends after generating one (it is part of the row), with StopReason::kEos.
  std::vector<int64_t> stop_token_ids;
  // Stop strings (HF generate(stop_strings=..., tokenizer=...)): a row ends with the token that
  // completes one of them in the row's decoded text (special tokens skipped), with
  // StopReason::kStopString. Tokens are returned as generated (the text is not cut; Pipeline
  // and TextStream cut it). Needs `processor` for decoding.
  std::vector<std::string> stop_strings;
  const PerceptionLMProcessor* processor = nullptr;
  // Called for each new token of each unfinished row, except a token that ends its row (eos,
  // stop id, stop string); return false to stop that row (StopReason::kCallback).
  std::function<bool(int64_t row, int64_t token)> on_token;
  // Progress of the prefill (vision tiles done / total).
  std::function<void(int64_t done, int64_t total)> on_vision_tile;
  // Called once before the prompt's forward pass with the number of prompt tokens (all rows,
  // padding excluded): progress for long prompts.
  std::function<void(int64_t prompt_tokens)> on_prefill;
};

struct GenerateTimings {
  double vision_s = 0, prefill_s = 0, decode_s = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
};

struct GenerateOutput {
  std::vector<std::vector<int64_t>> sequences;  // new tokens per row (finished rows padded, as HF)
  std::vector<StopReason> stop_reasons;
  std::vector<Tensor> scores;  // per step [batch, vocab] when output_scores
  // Per row, one entry per generated token (not the padding after a row finished), when
  // options.top_logprobs >= 0.
  std::vector<std::vector<StepLogprobs>> logprobs;
  GenerateTimings timings;
};

// Generates from `inputs` (ids [batch, len] left-padded with attention_mask, pixel inputs).
// Positions follow HF generate: cumsum(attention_mask) - 1, pads at 1.
GenerateOutput Generate(const PerceptionLMForConditionalGeneration& model,
                        const ForwardInputs& inputs, const GenerationConfig& config,
                        const GenerateOptions& options = {});

}  // namespace plm
