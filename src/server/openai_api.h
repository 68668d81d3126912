// The OpenAI chat-completions format ↔ libplm: request JSON → a ChatRequest with media references,
// engine results → response objects and streaming chunks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "plm/generation.h"
#include "plm/pipeline.h"
#include "plm/scheduler.h"
#include "server/server_options.h"

namespace plm::server {

// A media part of a message whose bytes are still to be fetched.
struct MediaRef {
  bool video = false;
  std::string url;     // data:, http(s):// or a local path
  size_t message = 0;  // index into ChatRequest::conversation
  size_t part = 0;     // index into that message's content
  std::string param;   // e.g. "messages[1].content[0].image_url.url" (named in errors)
};

struct ParsedChatRequest {
  std::string model;
  ChatRequest chat;  // media parts present but empty until fetched
  std::vector<MediaRef> media;
  bool max_tokens_given = false;  // else max_new_tokens is the server default (fit to context)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int top_logprobs = -1;       // -1: logprobs off
};

// Parses and validates a /v1/chat/completions body. `defaults` is the server's generation
// config (from the model and the `plm serve` flags). Throws ApiError (400/413).
ParsedChatRequest ParseChatRequest(const std::string& body, const ServerOptions& options,
                                   const GenerationConfig& defaults);

// The OpenAI logprobs object {"content": [...]} for generated tokens.
Json LogprobsJson(const std::vector<StepLogprobs>& steps, const PerceptionLMProcessor& processor);

// "chatcmpl-" + 24 random characters.
std::string NewCompletionId();

struct ResponseContext {
  std::string id;
  int64_t created = 0;
  std::string model;
  std::string fingerprint;
};

// "stop" or "length" as OpenAI reports them (for kStop / kLength).
const char* OpenAiFinishReason(FinishReason r);

Json UsageJson(const EngineEvent& final_event);

// A complete non-streaming response from the merged final event.
Json CompletionJson(const ResponseContext& ctx, const EngineEvent& all,
                    const PerceptionLMProcessor& processor, bool logprobs);

// One streaming chunk: `delta` text (or the assistant role first), logprobs, finish reason and
// usage as given.
Json ChunkJson(const ResponseContext& ctx, const Json& delta, const Json& logprobs,
               const char* finish_reason, const Json& usage);

}  // namespace plm::server
