#include "plm/pipeline.h"

#include <chrono>

#include "plm/error.h"
#include "runtime/text_stream.h"

namespace plm {

namespace {
double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Pipeline::~Pipeline() = default;

std::unique_ptr<Pipeline> Pipeline::FromPretrained(const std::string& dir,
                                                   const LoadOptions& options) {
  std::unique_ptr<Pipeline> p(new Pipeline());
  if (options.on_progress) options.on_progress("loading tokenizer and processor");
  p->processor_ = PerceptionLMProcessor::FromPretrained(dir);
  p->model_ = PerceptionLMForConditionalGeneration::FromPretrained(dir, options);
  p->generation_ = GenerationConfig::FromDirectory(dir);
  return p;
}

int64_t Pipeline::CountPromptTokens(const ChatRequest& request) const {
  return processor_->CountTokens(request.conversation, request.media);
}

ProcessorOutputs Pipeline::Prepare(const ChatRequest& req, double* preprocess_s) const {
  using Clock = std::chrono::steady_clock;
  if (req.conversation.empty())
    throw Error(ErrorCode::kInvalidArgument, "the conversation has no messages");
  const int64_t ctx = model_->config().text.max_position_embeddings;
  const int64_t max_new = req.generation.max_new_tokens;
  // Fail fast, from headers only, before decoding any pixels.
  const int64_t estimate = CountPromptTokens(req);
  if (estimate + max_new > ctx)
    throw Error(ErrorCode::kContextOverflow,
                "the prompt needs " + std::to_string(estimate) + " tokens and up to " +
                    std::to_string(max_new) + " more are requested, but the model's context is " +
                    std::to_string(ctx) +
                    " tokens (use fewer tiles, fewer frames, or a smaller --max-tokens)");
  const auto t0 = Clock::now();
  ProcessorOutputs in = processor_->Process({req.conversation}, req.media);
  if (preprocess_s) *preprocess_s = Since(t0);
  if (in.len + max_new > ctx)
    throw Error(ErrorCode::kContextOverflow, "the prompt is " + std::to_string(in.len) +
                                                 " tokens; with " + std::to_string(max_new) +
                                                 " new tokens it exceeds the context of " +
                                                 std::to_string(ctx));
  return in;
}

ChatResult Pipeline::Chat(const ChatRequest& req, const ChatCallbacks& cb) const {
  ChatResult res;
  if (cb.on_progress) cb.on_progress("preprocess", 0, 1);
  ProcessorOutputs in = Prepare(req, &res.timings.preprocess_s);
  res.prompt_tokens = in.len;
  res.image_tiles = in.image_tiles;
  res.video_frames = in.video_frames;

  TextStream stream(*processor_, req.stop_strings);
  bool cancelled = false;
  GenerateOptions opts;
  const int64_t total_tiles = in.image_tiles + in.video_frames;
  if (cb.on_progress && total_tiles > 0)
    opts.on_vision_tile = [&](int64_t done, int64_t) {
      cb.on_progress("vision", done, total_tiles);
    };
  if (cb.on_progress) opts.on_prefill = [&](int64_t n) { cb.on_progress("prefill", 0, n); };
  opts.on_token = [&](int64_t, int64_t token) {
    res.tokens.push_back(token);
    const std::string piece = stream.Push(token);
    if (stream.stopped()) {
      if (cb.on_text && !piece.empty()) cb.on_text(piece);
      return false;
    }
    if (cb.on_text && !piece.empty() && !cb.on_text(piece)) {
      cancelled = true;
      return false;
    }
    return true;
  };
  GenerateOutput out = Generate(*model_, in.AsForwardInputs(), req.generation, opts);
  if (!stream.stopped() && !cancelled) {
    const std::string tail = stream.Finish();
    if (cb.on_text && !tail.empty()) cb.on_text(tail);
  }
  res.text = stream.text();
  res.completion_tokens = out.timings.generated_tokens;
  res.stop_reason = stream.stopped() ? StopReason::kEos : out.stop_reasons.at(0);
  res.timings.vision_s = out.timings.vision_s;
  res.timings.prefill_s = out.timings.prefill_s;
  res.timings.decode_s = out.timings.decode_s;
  return res;
}

}  // namespace plm
