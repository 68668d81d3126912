// Engine: many concurrent chat requests on one loaded model (what `plm serve` runs on).
//
// One background thread owns all model compute. Each iteration it runs one batched decode step
// for every sequence that is generating (continuous batching: sequences join and leave between
// steps), then one bounded slice of prefill work for a waiting request (a few vision tiles, or a
// chunk of prompt tokens continuing that request's own KV cache), so running streams keep flowing
// while a large image is encoded. Finished sequences' KV caches are kept in a small LRU and a new
// request continues the longest matching prefix (same system prompt, same image, earlier turns of
// a conversation) instead of recomputing it.
//
//   plm::Engine engine(*pipeline, {});
//   auto ticket = engine.TryAcquire();              // nullopt: full (a server answers 429)
//   plm::EngineRequest req;
//   req.inputs = pipeline->Prepare(chat_request);   // decode + preprocess + tokenize
//   req.generation = chat_request.generation;
//   auto stream = engine.Submit(std::move(*ticket), std::move(req));
//   for (plm::EngineEvent ev; !ev.finished;)
//     if (stream->Next(&ev, std::chrono::milliseconds(100))) std::fputs(ev.text.c_str(), stdout);
//
// Greedy requests produce the same tokens as Pipeline::Chat; sampled ones are reproducible with
// their seed (each request has its own sampler). Thread-safety: every public method may be called
// from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plm/generation.h"
#include "plm/pipeline.h"
#include "plm/processor.h"

namespace plm {

struct EngineOptions {
  int max_batch = 8;   // requests in flight at once (vision, prefill or decode)
  int max_queue = 16;  // requests waiting for a slot (or being preprocessed) beyond max_batch
  int64_t prefill_chunk = 256;     // prompt tokens per prefill slice
  int vision_tiles_per_slice = 1;  // image tiles / video frames encoded per slice
  // KV cache bytes kept for prefix reuse (0: off), and the shortest prefix worth reusing.
  int64_t prefix_cache_bytes = int64_t{512} << 20;
  int64_t min_prefix_reuse = 16;
};

struct EngineRequest {
  ProcessorOutputs inputs;  // one prompt (batch 1), e.g. Pipeline::Prepare's result
  GenerationConfig generation;
  std::vector<std::string> stop_strings;  // generation stops before the first one (not included)
  int top_logprobs = -1;  // -1: no logprobs; n >= 0: each token's logprob and n alternatives
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

enum class FinishReason { kStop, kLength, kCancelled, kTimeout, kShutdown, kError };
// "stop", "length", "cancelled", "timeout", "shutdown", "error".
const char* FinishReasonName(FinishReason r);

struct EngineTimings {
  double queue_s = 0;                                // submitted → admitted to a slot
  double first_token_s = 0;                          // submitted → first token (0 when none)
  double total_s = 0;                                // submitted → finished
  double vision_s = 0, prefill_s = 0, decode_s = 0;  // compute spent on this request
};

// What a request produced since the previous event; the last event has `finished` set.
struct EngineEvent {
  std::string text;                    // text that became final (stop strings held back)
  std::vector<int64_t> tokens;         // generated ids, in order (EOS is not included)
  std::vector<StepLogprobs> logprobs;  // one per token when top_logprobs >= 0
  bool finished = false;
  // Filled on the final event.
  FinishReason finish_reason = FinishReason::kLength;
  std::string error;  // kError: what went wrong
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // generated tokens, EOS included (as Pipeline::Chat counts)
  int64_t cached_tokens = 0;      // prompt tokens taken from the prefix cache
  EngineTimings timings;
};

// A submitted request. Events arrive in order; the final one has `finished` set.
class EngineStream {
 public:
  // Waits up to `timeout` for events and returns them merged into one; false on timeout (and
  // after the final event was taken).
  bool Next(EngineEvent* event, std::chrono::milliseconds timeout);
  // Asks the engine to stop this request (it finishes with kCancelled).
  void Cancel();

  struct State;
  explicit EngineStream(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

struct EngineStats {
  int64_t reserved = 0;  // tickets taken but not yet submitted (requests being preprocessed)
  int64_t queued = 0;    // submitted, waiting for a slot
  int64_t active = 0;    // in flight (vision, prefill or decode)
  int64_t decoding = 0;  // generating tokens
  int64_t decode_steps = 0, decode_rows = 0;  // batched steps and the sequences they carried
  int64_t prefix_cache_entries = 0, prefix_cache_bytes = 0;
  int64_t prefix_hits = 0, prefix_reused_tokens = 0;
};

class Engine {
 public:
  Engine(const Pipeline& pipeline, EngineOptions options = {});
  ~Engine();  // cancels what is still running
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A place in the engine, taken before a request is preprocessed so an overloaded server refuses
  // work before doing any. Dropping it unused gives the place back.
  class Ticket {
   public:
    Ticket(Ticket&& o) noexcept : engine_(o.engine_) { o.engine_ = nullptr; }
    Ticket& operator=(Ticket&& o) noexcept;
    ~Ticket();

   private:
    friend class Engine;
    explicit Ticket(Engine* e) : engine_(e) {}
    Engine* engine_;
  };
  // nullopt when max_batch + max_queue requests are already in the engine or it is shutting down.
  std::optional<Ticket> TryAcquire();

  // Queues a prepared request. Throws kInvalidArgument for inputs the engine cannot run (batch
  // other than 1, empty prompt, context overflow) and kUnsupported after Shutdown began.
  std::shared_ptr<EngineStream> Submit(Ticket ticket, EngineRequest request);

  // Stops admitting requests, lets in-flight and queued ones finish for up to `grace`, cancels the
  // rest (kShutdown) and stops the compute thread. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);
  bool shutting_down() const;

  EngineStats stats() const;
  const Pipeline& pipeline() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace plm
