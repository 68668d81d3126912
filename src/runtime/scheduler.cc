#include "plm/scheduler.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "plm/error.h"
#include "runtime/prefix_cache.h"
#include "runtime/sampler.h"
#include "runtime/text_stream.h"

namespace plm {

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Merges `next` into `into` (text, tokens and logprobs accumulate; the final fields come from the
// last event).
void Merge(EngineEvent* into, EngineEvent&& next) {
  if (next.finished) {
    next.text = into->text + next.text;
    next.tokens.insert(next.tokens.begin(), into->tokens.begin(), into->tokens.end());
    next.logprobs.insert(next.logprobs.begin(), std::make_move_iterator(into->logprobs.begin()),
                         std::make_move_iterator(into->logprobs.end()));
    *into = std::move(next);
    return;
  }
  into->text += next.text;
  into->tokens.insert(into->tokens.end(), next.tokens.begin(), next.tokens.end());
  into->logprobs.insert(into->logprobs.end(), std::make_move_iterator(next.logprobs.begin()),
                        std::make_move_iterator(next.logprobs.end()));
}

}  // namespace

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kTimeout:
      return "timeout";
    case FinishReason::kShutdown:
      return "shutdown";
    case FinishReason::kError:
      return "error";
  }
  return "?";
}

struct EngineStream::State {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<EngineEvent> events;
  bool final_taken = false;
  std::atomic<bool> cancel{false};

  void Push(EngineEvent&& ev) {
    {
      std::lock_guard<std::mutex> lk(mu);
      if (!events.empty() && !events.back().finished)
        Merge(&events.back(), std::move(ev));
      else
        events.push_back(std::move(ev));
    }
    cv.notify_all();
  }
};

bool EngineStream::Next(EngineEvent* event, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(state_->mu);
  if (state_->final_taken) return false;
  if (!state_->cv.wait_for(lk, timeout, [&] { return !state_->events.empty(); })) return false;
  *event = std::move(state_->events.front());
  state_->events.pop_front();
  while (!state_->events.empty()) {
    Merge(event, std::move(state_->events.front()));
    state_->events.pop_front();
  }
  if (event->finished) state_->final_taken = true;
  return true;
}

void EngineStream::Cancel() {
  state_->cancel = true;
}

namespace {

struct Job {
  enum class Phase { kVision, kPrefill, kDecode };

  EngineRequest req;
  std::shared_ptr<EngineStream::State> st;
  std::vector<uint64_t> keys;  // per prompt position, for prefix matching
  Clock::time_point submitted, admitted;
  Phase phase = Phase::kVision;
  int64_t L = 0;  // prompt length
  KVCache cache;
  int64_t cached = 0;     // prompt positions reused from the prefix cache
  int64_t prefilled = 0;  // prompt positions in the cache

  // Vision: image tiles then video frames, starting at the first one the prompt still needs.
  int64_t image_rows_per_tile = 0, video_rows_per_tile = 0;
  int64_t next_image_tile = 0, next_video_tile = 0;
  std::vector<float> image_features, video_features;  // [placeholder rows, hidden]
  int64_t image_row = 0, video_row = 0;               // placeholder rows before `prefilled`

  std::unique_ptr<Sampler> sampler;
  std::vector<int64_t> seen;  // prompt + generated ids (repetition penalty)
  std::unique_ptr<TextStream> text;
  int64_t generated = 0;
  int64_t last_token = -1;
  bool got_first_token = false;
  EngineEvent pending;  // what this iteration produced
  EngineTimings timings;
};

}  // namespace

struct Engine::Impl {
  const Pipeline& pipe;
  EngineOptions opt;
  const PerceptionLMForConditionalGeneration& model;
  int64_t vocab = 0, hidden = 0, context = 0;
  int64_t image_token = 0, video_token = 0;

  mutable std::mutex mu;
  std::condition_variable wake;      // the loop waits for work here
  std::condition_variable finished;  // Shutdown waits for in-flight work here
  std::deque<std::unique_ptr<Job>> queue;
  int64_t reserved = 0;
  int64_t active_count = 0;
  int64_t decoding_count = 0;
  bool accepting = true;
  bool cancel_all = false;
  bool stop = false;
  int64_t decode_steps = 0, decode_rows = 0;
  int64_t prefix_hits = 0, prefix_reused = 0;
  int64_t prefix_entries = 0, prefix_bytes = 0;

  std::list<std::unique_ptr<Job>> active;  // loop thread only
  PrefixCache prefix;                      // loop thread only
  std::thread thread;

  Impl(const Pipeline& p, EngineOptions o)
      : pipe(p),
        opt(o),
        model(p.model()),
        prefix(p.model().config().text, o.prefix_cache_bytes, o.min_prefix_reuse) {
    const auto& t = model.config().text;
    vocab = t.vocab_size;
    hidden = t.hidden_size;
    context = t.max_position_embeddings;
    image_token = model.config().image_token_id;
    video_token = model.config().video_token_id;
    if (opt.max_batch < 1) opt.max_batch = 1;
    if (opt.max_queue < 0) opt.max_queue = 0;
    if (opt.prefill_chunk < 1) opt.prefill_chunk = 1;
    if (opt.vision_tiles_per_slice < 1) opt.vision_tiles_per_slice = 1;
    thread = std::thread([this] { Loop(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lk(mu);
      accepting = false;
      cancel_all = true;
      stop = true;
    }
    wake.notify_all();
    if (thread.joinable()) thread.join();
  }

  void Loop();
  void Admit(Job& j);
  void VisionSlice(Job& job);
  void PrefillSlice(Job& job);
  void DecodeStep();
  Job* NextToPrepare();
  int64_t oldest_skipped = 0;  // slices given to others while the oldest preparing job waited
  void Emit(Job& job, const float* logits);
  void Finish(Job& job, FinishReason reason, const std::string& error = "");
};

Engine::Ticket::~Ticket() {
  if (!engine_) return;
  std::lock_guard<std::mutex> lk(engine_->impl_->mu);
  --engine_->impl_->reserved;
}

Engine::Ticket& Engine::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    Ticket dropped(std::move(*this));  // gives our place back
    engine_ = o.engine_;
    o.engine_ = nullptr;
  }
  return *this;
}

Engine::Engine(const Pipeline& pipeline, EngineOptions options)
    : impl_(std::make_unique<Impl>(pipeline, options)) {}

Engine::~Engine() = default;

const Pipeline& Engine::pipeline() const {
  return impl_->pipe;
}

std::optional<Engine::Ticket> Engine::TryAcquire() {
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (!impl_->accepting) return std::nullopt;
  const int64_t in_engine =
      impl_->reserved + static_cast<int64_t>(impl_->queue.size()) + impl_->active_count;
  if (in_engine >= impl_->opt.max_batch + impl_->opt.max_queue) return std::nullopt;
  ++impl_->reserved;
  return Ticket(this);
}

bool Engine::shutting_down() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return !impl_->accepting;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  EngineStats s;
  s.reserved = impl_->reserved;
  s.queued = static_cast<int64_t>(impl_->queue.size());
  s.active = impl_->active_count;
  s.decoding = impl_->decoding_count;
  s.decode_steps = impl_->decode_steps;
  s.decode_rows = impl_->decode_rows;
  s.prefix_cache_entries = impl_->prefix_entries;
  s.prefix_cache_bytes = impl_->prefix_bytes;
  s.prefix_hits = impl_->prefix_hits;
  s.prefix_reused_tokens = impl_->prefix_reused;
  return s;
}

std::shared_ptr<EngineStream> Engine::Submit(Ticket ticket, EngineRequest req) {
  if (ticket.engine_ != this)
    throw Error(ErrorCode::kInvalidArgument, "the ticket belongs to another engine");
  Impl& m = *impl_;
  const ProcessorOutputs& in = req.inputs;
  if (in.batch != 1)
    throw Error(
        ErrorCode::kInvalidArgument,
        "the engine runs one prompt per request, got a batch of " + std::to_string(in.batch));
  if (in.len <= 0 || static_cast<int64_t>(in.input_ids.size()) != in.len)
    throw Error(ErrorCode::kInvalidArgument, "the request has no prompt tokens");
  for (int64_t v : in.attention_mask)
    if (v == 0) throw Error(ErrorCode::kInvalidArgument, "the prompt must not contain padding");
  if (req.generation.max_new_tokens < 0)
    throw Error(ErrorCode::kInvalidArgument, "max_new_tokens must be >= 0");
  if (in.len + req.generation.max_new_tokens > m.context)
    throw Error(ErrorCode::kContextOverflow,
                "the prompt is " + std::to_string(in.len) + " tokens; with " +
                    std::to_string(req.generation.max_new_tokens) +
                    " new tokens it exceeds the context of " + std::to_string(m.context));
  auto job = std::make_unique<Job>();
  job->L = in.len;
  job->keys = PrefixKeys(in, m.image_token, m.video_token);  // validates the media layout
  job->st = std::make_shared<EngineStream::State>();
  job->submitted = Clock::now();
  job->req = std::move(req);
  auto stream = std::make_shared<EngineStream>(job->st);
  {
    std::lock_guard<std::mutex> lk(m.mu);
    if (!m.accepting) throw Error(ErrorCode::kUnsupported, "the server is shutting down");
    --m.reserved;
    ticket.engine_ = nullptr;
    m.queue.push_back(std::move(job));
  }
  m.wake.notify_all();
  return stream;
}

void Engine::Shutdown(std::chrono::milliseconds grace) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lk(m.mu);
  m.accepting = false;
  m.finished.wait_for(lk, grace, [&] { return m.queue.empty() && m.active_count == 0; });
  m.cancel_all = true;
  m.stop = true;
  lk.unlock();
  m.wake.notify_all();
  if (m.thread.joinable() && m.thread.get_id() != std::this_thread::get_id()) m.thread.join();
}

void Engine::Impl::Admit(Job& j) {
  j.admitted = Clock::now();
  j.timings.queue_s = Seconds(j.submitted, j.admitted);
  const ProcessorOutputs& in = j.req.inputs;
  const int64_t capacity = j.L + j.req.generation.max_new_tokens;
  const PrefixCache::Match match = prefix.Lookup(j.keys);
  if (match.length > 0) {
    j.cache = prefix.CopyPrefix(match, model, capacity);
    j.cached = match.length;
  } else {
    j.cache = model.NewCache(1, capacity);
  }
  j.prefilled = j.cached;
  // Placeholder rows before the reused prefix, and the first tile the rest still needs.
  int64_t image_rows = 0, video_rows = 0;
  for (int64_t id : in.input_ids) {
    image_rows += id == image_token;
    video_rows += id == video_token;
  }
  if (in.image_tiles > 0) j.image_rows_per_tile = image_rows / in.image_tiles;
  if (in.video_frames > 0) j.video_rows_per_tile = video_rows / in.video_frames;
  for (int64_t p = 0; p < j.cached; ++p) {
    j.image_row += in.input_ids[p] == image_token;
    j.video_row += in.input_ids[p] == video_token;
  }
  j.next_image_tile = in.image_tiles > 0 ? j.image_row / j.image_rows_per_tile : 0;
  j.next_video_tile = in.video_frames > 0 ? j.video_row / j.video_rows_per_tile : 0;
  j.image_features.resize(static_cast<size_t>(image_rows * hidden));
  j.video_features.resize(static_cast<size_t>(video_rows * hidden));
  j.phase = Job::Phase::kVision;

  GenerationConfig g = j.req.generation;
  j.sampler = std::make_unique<Sampler>(g);
  j.seen = in.input_ids;
  j.text = std::make_unique<TextStream>(pipe.processor(), j.req.stop_strings);
  {
    std::lock_guard<std::mutex> lk(mu);
    if (j.cached > 0) {
      ++prefix_hits;
      prefix_reused += j.cached;
    }
  }
}

void Engine::Impl::VisionSlice(Job& j) {
  const auto t0 = Clock::now();
  const ProcessorOutputs& in = j.req.inputs;
  const bool image = j.next_image_tile < in.image_tiles;
  const int64_t tiles = image ? in.image_tiles : in.video_frames;
  int64_t& next = image ? j.next_image_tile : j.next_video_tile;
  const std::vector<float>& pixels = image ? in.pixel_values : in.pixel_values_videos;
  std::vector<float>& features = image ? j.image_features : j.video_features;
  const int64_t rows_per_tile = image ? j.image_rows_per_tile : j.video_rows_per_tile;
  const int64_t n = std::min<int64_t>(opt.vision_tiles_per_slice, tiles - next);
  const int64_t tile_elems = static_cast<int64_t>(pixels.size()) / tiles;
  const Tensor f = model.GetImageFeatures(
      {pixels.data() + next * tile_elems, n, image ? in.image_tile_size : in.video_tile_size});
  if (f.numel() != n * rows_per_tile * hidden)
    throw Error(
        ErrorCode::kInvalidArgument,
        std::string(image ? "image" : "video") +
            " features and placeholder tokens do not match: " + std::to_string(f.numel() / hidden) +
            " feature rows for " + std::to_string(n * rows_per_tile) + " placeholders");
  std::copy_n(f.ptr(), f.numel(), features.data() + next * rows_per_tile * hidden);
  next += n;
  if (j.next_image_tile >= in.image_tiles && j.next_video_tile >= in.video_frames)
    j.phase = Job::Phase::kPrefill;
  j.timings.vision_s += Seconds(t0, Clock::now());
}

void Engine::Impl::PrefillSlice(Job& j) {
  const auto t0 = Clock::now();
  const ProcessorOutputs& in = j.req.inputs;
  const int64_t s = j.prefilled, e = std::min(j.L, s + opt.prefill_chunk), n = e - s;
  ForwardInputs ids;
  ids.input_ids.assign(in.input_ids.begin() + s, in.input_ids.begin() + e);
  ids.batch = 1;
  ids.len = n;
  Tensor embeds = model.GetInputEmbeddings(ids, nullptr);
  for (int64_t p = s; p < e; ++p) {
    const int64_t id = in.input_ids[p];
    float* row = embeds.ptr() + (p - s) * hidden;
    if (id == image_token && in.image_tiles > 0)
      std::copy_n(j.image_features.data() + j.image_row++ * hidden, hidden, row);
    else if (id == video_token && in.video_frames > 0)
      std::copy_n(j.video_features.data() + j.video_row++ * hidden, hidden, row);
  }
  ForwardInputs fwd;
  fwd.inputs_embeds = std::move(embeds.data);
  fwd.batch = 1;
  fwd.len = n;
  fwd.logits_to_keep = 1;
  ForwardOutputs out = model.Forward(fwd, &j.cache);
  j.prefilled = e;
  j.timings.prefill_s += Seconds(t0, Clock::now());
  if (e < j.L) return;
  // The prompt is in the cache: media features are no longer needed.
  std::vector<float>().swap(j.image_features);
  std::vector<float>().swap(j.video_features);
  if (j.req.generation.max_new_tokens == 0) {
    Finish(j, FinishReason::kLength);
    return;
  }
  Emit(j, out.logits.ptr());
}

// Picks the next token from a logits row (raw model logits), records it and checks the stops.
void Engine::Impl::Emit(Job& j, const float* logits) {
  std::vector<float> row(logits, logits + vocab);
  std::vector<float> raw;
  if (j.req.top_logprobs >= 0) raw = row;
  const int64_t token = j.sampler->Next(row, j.seen);
  j.seen.push_back(token);
  ++j.generated;
  if (!j.got_first_token) {
    j.got_first_token = true;
    j.timings.first_token_s = Seconds(j.submitted, Clock::now());
  }
  bool eos = false;
  for (int64_t e : j.req.generation.eos_token_ids) eos |= token == e;
  if (eos) {
    Finish(j, FinishReason::kStop);
    return;
  }
  j.pending.tokens.push_back(token);
  if (j.req.top_logprobs >= 0)
    j.pending.logprobs.push_back(ComputeLogprobs(raw, token, j.req.top_logprobs));
  j.pending.text += j.text->Push(token);
  if (j.text->stopped()) {
    Finish(j, FinishReason::kStop);
    return;
  }
  if (j.generated >= j.req.generation.max_new_tokens) {
    Finish(j, FinishReason::kLength);
    return;
  }
  j.last_token = token;
  if (j.phase != Job::Phase::kDecode) {
    j.phase = Job::Phase::kDecode;
    std::lock_guard<std::mutex> lk(mu);
    ++decoding_count;
  }
}

void Engine::Impl::Finish(Job& j, FinishReason reason, const std::string& error) {
  EngineEvent ev = std::move(j.pending);
  j.pending = EngineEvent{};
  if (j.text && reason != FinishReason::kError) ev.text += j.text->Finish();
  ev.finished = true;
  ev.finish_reason = reason;
  ev.error = error;
  ev.prompt_tokens = j.L;
  ev.completion_tokens = j.generated;
  ev.cached_tokens = j.cached;
  j.timings.total_s = Seconds(j.submitted, Clock::now());
  ev.timings = j.timings;
  if ((reason == FinishReason::kStop || reason == FinishReason::kLength) &&
      j.cache.length() >= j.L) {
    // The cache holds the prompt and every generated token but the last.
    std::vector<uint64_t> keys = std::move(j.keys);
    for (int64_t p = j.L; p < j.cache.length(); ++p)
      keys.push_back(static_cast<uint64_t>(j.seen[p]));
    prefix.Store(std::move(keys), j.cache, model);
  }
  j.cache = KVCache();
  j.st->Push(std::move(ev));
  j.st.reset();  // marks the job done
  std::lock_guard<std::mutex> lk(mu);
  if (j.phase == Job::Phase::kDecode) --decoding_count;
  j.phase = Job::Phase::kVision;
  prefix_entries = prefix.entries();
  prefix_bytes = prefix.bytes();
}

// Which preparing request gets the next slice: the one with the least work left (a short text
// question does not wait behind a 37-tile image), except that the oldest one gets every fifth
// slice at least, so a big request cannot be starved by a stream of small ones.
Job* Engine::Impl::NextToPrepare() {
  auto remaining = [&](const Job& j) {
    const ProcessorOutputs& in = j.req.inputs;
    const int64_t tiles =
        (in.image_tiles - j.next_image_tile) + (in.video_frames - j.next_video_tile);
    return (tiles + opt.vision_tiles_per_slice - 1) / opt.vision_tiles_per_slice +
           (j.L - j.prefilled + opt.prefill_chunk - 1) / opt.prefill_chunk;
  };
  Job* oldest = nullptr;
  Job* best = nullptr;
  for (auto& j : active) {
    if (!j->st || j->phase == Job::Phase::kDecode) continue;
    if (!oldest) oldest = j.get();
    if (!best || remaining(*j) < remaining(*best)) best = j.get();
  }
  if (best != oldest && oldest_skipped >= 4) best = oldest;
  oldest_skipped = best == oldest ? 0 : oldest_skipped + 1;
  return best;
}

void Engine::Impl::DecodeStep() {
  std::vector<Job*> rows;
  for (auto& j : active)
    if (j->st && j->phase == Job::Phase::kDecode) rows.push_back(j.get());
  if (rows.empty()) return;
  const auto t0 = Clock::now();
  ForwardInputs in;
  in.batch = static_cast<int64_t>(rows.size());
  in.len = 1;
  std::vector<KVCache*> caches;
  for (Job* j : rows) {
    in.input_ids.push_back(j->last_token);
    caches.push_back(&j->cache);
  }
  ForwardOutputs out;
  try {
    out = model.ForwardSequences(in, caches);
  } catch (const std::exception& e) {
    for (Job* j : rows) Finish(*j, FinishReason::kError, e.what());
    return;
  }
  const double dt = Seconds(t0, Clock::now());
  {
    std::lock_guard<std::mutex> lk(mu);
    ++decode_steps;
    decode_rows += in.batch;
  }
  for (size_t b = 0; b < rows.size(); ++b) {
    rows[b]->timings.decode_s += dt;
    try {
      Emit(*rows[b], out.logits.ptr() + static_cast<int64_t>(b) * vocab);
    } catch (const std::exception& e) {
      Finish(*rows[b], FinishReason::kError, e.what());
    }
  }
}

void Engine::Impl::Loop() {
  bool trimmed = true;
  for (;;) {
    std::vector<std::unique_ptr<Job>> admitted, dropped;
    bool cancel_everything = false;
    {
      std::unique_lock<std::mutex> lk(mu);
      if (active.empty() && queue.empty()) {
        if (stop) break;
        if (!trimmed) {
          // Idle: give freed KV caches and pixel buffers back to the system.
          lk.unlock();
          malloc_trim(0);
          lk.lock();
          trimmed = true;
        }
        wake.wait(lk, [&] { return stop || !queue.empty(); });
        if (stop && queue.empty()) break;
      }
      trimmed = false;
      cancel_everything = cancel_all;
      // Queued requests that were cancelled or timed out leave without a slot.
      const auto now = Clock::now();
      for (auto it = queue.begin(); it != queue.end();) {
        if (cancel_everything || (*it)->st->cancel || now >= (*it)->req.deadline) {
          dropped.push_back(std::move(*it));
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      while (!cancel_everything && !queue.empty() &&
             active_count + static_cast<int64_t>(admitted.size()) < opt.max_batch) {
        admitted.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      active_count += static_cast<int64_t>(admitted.size());
    }
    for (auto& j : dropped) {
      j->text = nullptr;
      const FinishReason r = cancel_everything ? FinishReason::kShutdown
                             : j->st->cancel   ? FinishReason::kCancelled
                                               : FinishReason::kTimeout;
      Finish(*j, r);
    }
    for (auto& j : admitted) {
      try {
        Admit(*j);
        active.push_back(std::move(j));
      } catch (const std::exception& e) {
        // E.g. out of memory for the cache: the request fails, the engine keeps serving.
        Finish(*j, FinishReason::kError, e.what());
        std::lock_guard<std::mutex> lk(mu);
        --active_count;
      }
    }
    // Cancellations and deadlines of running requests.
    const auto now = Clock::now();
    for (auto& j : active) {
      if (!j->st) continue;
      if (cancel_everything)
        Finish(*j, FinishReason::kShutdown);
      else if (j->st->cancel)
        Finish(*j, FinishReason::kCancelled);
      else if (now >= j->req.deadline)
        Finish(*j, FinishReason::kTimeout);
    }
    // One batched decode step for everything generating, then one slice of prefill work.
    DecodeStep();
    if (Job* j = NextToPrepare()) {
      try {
        if (j->phase == Job::Phase::kVision && (j->next_image_tile < j->req.inputs.image_tiles ||
                                                j->next_video_tile < j->req.inputs.video_frames))
          VisionSlice(*j);
        else {
          j->phase = Job::Phase::kPrefill;
          PrefillSlice(*j);
        }
      } catch (const std::exception& e) {
        if (j->st) Finish(*j, FinishReason::kError, e.what());
      }
    }
    // Publish what this iteration produced and drop finished jobs.
    int64_t done = 0;
    for (auto it = active.begin(); it != active.end();) {
      Job& j = **it;
      if (j.st && (!j.pending.tokens.empty() || !j.pending.text.empty())) {
        j.st->Push(std::move(j.pending));
        j.pending = EngineEvent{};
      }
      if (!j.st) {
        it = active.erase(it);
        ++done;
      } else {
        ++it;
      }
    }
    if (done > 0 || !dropped.empty()) {
      {
        std::lock_guard<std::mutex> lk(mu);
        active_count -= done;
      }
      finished.notify_all();
    }
  }
  finished.notify_all();
}

}  // namespace plm
