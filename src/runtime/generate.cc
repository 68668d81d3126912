#include <chrono>

#include "core/json.h"
#include "plm/error.h"
#include "plm/generation.h"
#include "runtime/sampler.h"
#include "runtime/text_stream.h"

#include <sys/stat.h>

namespace plm {

namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

const char* StopReasonName(StopReason r) {
  switch (r) {
    case StopReason::kEos:
      return "stop";
    case StopReason::kLength:
      return "length";
    case StopReason::kCallback:
      return "cancelled";
    case StopReason::kStopString:
      return "stop";
  }
  return "?";
}

GenerationConfig GenerationConfig::FromFile(const std::string& path) {
  const Json j = ReadJsonFile(path);
  if (!j.is_object()) throw Error(ErrorCode::kCorrupt, path + ": expected a JSON object");
  GenerationConfig g;
  g.do_sample = JsonBoolOr(j, "do_sample", false, path);
  g.temperature = static_cast<float>(JsonNumberOr(j, "temperature", 1.0, path));
  g.top_k = JsonIntOr(j, "top_k", 0, path);
  g.top_p = static_cast<float>(JsonNumberOr(j, "top_p", 1.0, path));
  g.min_p = static_cast<float>(JsonNumberOr(j, "min_p", 0.0, path));
  g.repetition_penalty = static_cast<float>(JsonNumberOr(j, "repetition_penalty", 1.0, path));
  g.max_new_tokens = JsonIntOr(j, "max_new_tokens", g.max_new_tokens, path);
  auto eos = j.find("eos_token_id");
  if (eos != j.end() && !eos->is_null()) {
    g.eos_token_ids.clear();
    if (eos->is_number_integer()) {
      g.eos_token_ids.push_back(eos->get<int64_t>());
    } else if (eos->is_array()) {
      for (const auto& e : *eos) {
        if (!e.is_number_integer())
          throw Error(ErrorCode::kCorrupt, path + ": eos_token_id must hold integers");
        g.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      throw Error(ErrorCode::kCorrupt, path + ": eos_token_id must be an integer or a list");
    }
  }
  g.pad_token_id = JsonIntOr(j, "pad_token_id", -1, path);
  return g;
}

GenerationConfig GenerationConfig::FromDirectory(const std::string& dir) {
  const std::string path = dir + "/generation_config.json";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return GenerationConfig{};
  return FromFile(path);
}

GenerateOutput Generate(const PerceptionLMForConditionalGeneration& model,
                        const ForwardInputs& inputs, const GenerationConfig& config,
                        const GenerateOptions& options) {
  using Clock = std::chrono::steady_clock;
  const int64_t B = inputs.batch, L = inputs.len, V = model.config().text.vocab_size;
  if (config.max_new_tokens < 0)
    throw Error(ErrorCode::kInvalidArgument, "max_new_tokens must be >= 0");
  const int64_t max_pos = model.config().text.max_position_embeddings;
  if (L + config.max_new_tokens > max_pos)
    throw Error(ErrorCode::kContextOverflow, "prompt of " + std::to_string(L) + " tokens + " +
                                                 std::to_string(config.max_new_tokens) +
                                                 " new tokens exceeds the context of " +
                                                 std::to_string(max_pos));
  GenerateOutput out;
  out.sequences.assign(static_cast<size_t>(B), {});
  out.stop_reasons.assign(static_cast<size_t>(B), StopReason::kLength);
  out.timings.prompt_tokens = L;

  // Vision + merge.
  const auto t0 = Clock::now();
  ForwardInputs embed_in = inputs;
  embed_in.output_vision_hidden_states = false;
  embed_in.on_vision_tile = options.on_vision_tile;
  Tensor embeds;
  {
    ForwardOutputs scratch;
    embeds = model.GetInputEmbeddings(embed_in, &scratch);
  }
  const auto t1 = Clock::now();
  out.timings.vision_s = Seconds(t0, t1);

  // HF generate: positions = cumsum(mask) - 1, padding positions set to 1.
  std::vector<int64_t> mask = inputs.attention_mask;
  if (mask.empty()) mask.assign(static_cast<size_t>(B * L), 1);
  std::vector<int64_t> positions(static_cast<size_t>(B * L));
  std::vector<int64_t> next_pos(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    int64_t c = 0;
    for (int64_t l = 0; l < L; ++l) {
      c += mask[b * L + l] != 0;
      positions[b * L + l] = mask[b * L + l] ? c - 1 : 1;
    }
    next_pos[b] = c;
  }
  if (options.on_prefill) {
    int64_t real = 0;
    for (int64_t b = 0; b < B; ++b) real += next_pos[b];
    options.on_prefill(real);
  }
  KVCache cache = model.NewCache(B, L + config.max_new_tokens);
  ForwardInputs prefill;
  prefill.inputs_embeds = std::move(embeds.data);
  prefill.batch = B;
  prefill.len = L;
  prefill.attention_mask = mask;
  prefill.position_ids = positions;
  prefill.logits_to_keep = 1;
  ForwardOutputs step = model.Forward(prefill, &cache);
  const auto t2 = Clock::now();
  out.timings.prefill_s = Seconds(t1, t2);

  const int64_t pad = config.pad_token_id >= 0
                          ? config.pad_token_id
                          : (config.eos_token_ids.empty() ? 0 : config.eos_token_ids[0]);
  std::vector<std::vector<int64_t>> seen(static_cast<size_t>(B));
  if (!inputs.input_ids.empty())
    for (int64_t b = 0; b < B; ++b)
      seen[b].assign(inputs.input_ids.begin() + b * L, inputs.input_ids.begin() + (b + 1) * L);
  std::vector<Sampler> samplers;
  for (int64_t b = 0; b < B; ++b) {
    GenerationConfig c = config;
    c.seed = config.seed + static_cast<uint64_t>(b);
    samplers.emplace_back(c);
  }
  bool any_stop_string = false;
  for (const auto& s : options.stop_strings) any_stop_string |= !s.empty();
  std::vector<std::unique_ptr<TextStream>> streams(static_cast<size_t>(B));
  if (any_stop_string) {
    if (options.processor == nullptr)
      throw Error(ErrorCode::kInvalidArgument,
                  "stop strings need GenerateOptions::processor to decode the tokens");
    for (auto& s : streams)
      s = std::make_unique<TextStream>(*options.processor, options.stop_strings);
  }
  std::vector<bool> finished(static_cast<size_t>(B), false);
  int64_t unfinished = B;
  const bool want_logprobs = options.top_logprobs >= 0;
  if (want_logprobs) out.logprobs.assign(static_cast<size_t>(B), {});
  std::vector<float> raw;  // the row before the sampler's processors change it
  for (int64_t t = 0; t < config.max_new_tokens && unfinished > 0; ++t) {
    Tensor scores({B, V});
    std::vector<int64_t> next(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      std::span<float> logits(step.logits.ptr() + b * V, static_cast<size_t>(V));
      if (finished[b]) {
        next[b] = pad;
      } else if (want_logprobs) {
        raw.assign(logits.begin(), logits.end());
        next[b] = samplers[b].Next(logits, seen[b]);
        out.logprobs[b].push_back(ComputeLogprobs(raw, next[b], options.top_logprobs));
      } else {
        next[b] = samplers[b].Next(logits, seen[b]);
      }
      if (options.output_scores) std::copy(logits.begin(), logits.end(), scores.ptr() + b * V);
    }
    if (options.output_scores) out.scores.push_back(std::move(scores));
    for (int64_t b = 0; b < B; ++b) {
      out.sequences[b].push_back(next[b]);
      if (finished[b]) continue;
      seen[b].push_back(next[b]);
      ++out.timings.generated_tokens;
      bool stop = false;
      for (int64_t e : config.eos_token_ids) stop |= next[b] == e;
      for (int64_t e : options.stop_token_ids) stop |= next[b] == e;
      if (stop) {
        out.stop_reasons[b] = StopReason::kEos;
      } else if (streams[b] && (streams[b]->Push(next[b]), streams[b]->stopped())) {
        stop = true;
        out.stop_reasons[b] = StopReason::kStopString;
      } else if (options.on_token && !options.on_token(b, next[b])) {
        stop = true;
        out.stop_reasons[b] = StopReason::kCallback;
      }
      if (stop) {
        finished[b] = true;
        --unfinished;
      }
    }
    if (unfinished == 0 || t + 1 == config.max_new_tokens) break;
    ForwardInputs dec;
    dec.input_ids = next;
    dec.batch = B;
    dec.len = 1;
    dec.attention_mask.assign(static_cast<size_t>(B), 1);
    dec.position_ids.resize(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) dec.position_ids[b] = next_pos[b]++;
    step = model.Forward(dec, &cache);
  }
  out.timings.decode_s = Seconds(t2, Clock::now());
  return out;
}

}  // namespace plm
