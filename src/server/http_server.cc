#include "server/http_server.h"

#include <httplib.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "server/api_error.h"
#include "server/connection_probe.h"
#include "server/media_fetch.h"
#include "server/openai_api.h"

namespace plm::server {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// JSON text for the wire: invalid UTF-8 (a token cut inside a character) becomes U+FFFD instead
// of an exception.
std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendError(httplib::Response& res, const ApiError& e) {
  SendJson(res, e.status, e.ToJson());
}

void MergeEvent(EngineEvent* all, EngineEvent&& ev) {
  all->text += ev.text;
  all->tokens.insert(all->tokens.end(), ev.tokens.begin(), ev.tokens.end());
  all->logprobs.insert(all->logprobs.end(), std::make_move_iterator(ev.logprobs.begin()),
                       std::make_move_iterator(ev.logprobs.end()));
  if (ev.finished) {
    all->finished = true;
    all->finish_reason = ev.finish_reason;
    all->error = std::move(ev.error);
    all->prompt_tokens = ev.prompt_tokens;
    all->completion_tokens = ev.completion_tokens;
    all->cached_tokens = ev.cached_tokens;
    all->timings = ev.timings;
  }
}

// The error a request that did not complete normally reports (timeouts, shutdown, failures).
ApiError FinishError(const EngineEvent& f) {
  switch (f.finish_reason) {
    case FinishReason::kTimeout:
      return ApiError(503, "timeout_error", "timeout",
                      "the request did not finish within the server's time limit");
    case FinishReason::kShutdown:
      return ApiError(503, "service_unavailable", "shutting_down",
                      "the server shut down before the request finished");
    case FinishReason::kCancelled:
      return ApiError(499, "cancelled", "cancelled", "the request was cancelled");
    default:
      return ApiError(500, "server_error", "internal_error",
                      f.error.empty() ? "the request failed" : f.error);
  }
}

bool Completed(const EngineEvent& f) {
  return f.finish_reason == FinishReason::kStop || f.finish_reason == FinishReason::kLength;
}

// The state of one streamed response, owned by the chunked content provider.
struct StreamContext {
  std::shared_ptr<EngineStream> stream;
  std::shared_ptr<const Pipeline> pipeline;
  ResponseContext ctx;
  int socket = -1;
  bool include_usage = false;
  bool logprobs = false;
  bool started = false;
  bool finished = false;
  std::chrono::steady_clock::time_point checked = std::chrono::steady_clock::now();
};

bool WriteEvent(httplib::DataSink& sink, const std::string& data) {
  const std::string frame = "data: " + data + "\n\n";
  return sink.write(frame.data(), frame.size());
}

}  // namespace

Server::Server(ServerOptions options)
    : options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  fingerprint_ = "plm.cpp";
  if (options_.return_memory) mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

Server::~Server() {
  Shutdown();
  Wait();
}

std::shared_ptr<Engine> Server::engine() const {
  std::lock_guard<std::mutex> lk(mu_);
  return engine_;
}

void Server::SetPipeline(std::shared_ptr<const Pipeline> pipeline,
                         const GenerationConfig& defaults) {
  auto engine = std::make_shared<Engine>(*pipeline, options_.engine);
  {
    std::lock_guard<std::mutex> lk(mu_);
    pipeline_ = std::move(pipeline);
    defaults_ = defaults;
    engine_ = std::move(engine);
  }
  ready_ = true;
}

void Server::Release() {
  {
    std::lock_guard<std::mutex> lk(inflight_mu_);
    --inflight_;
  }
  inflight_cv_.notify_all();
}

int Server::Start() {
  const int limit_threads = options_.engine.max_batch + options_.engine.max_queue + 8;
  const int threads = options_.http_threads > 0 ? options_.http_threads : limit_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(static_cast<size_t>(options_.limits.max_body_bytes));
  http_->set_keep_alive_timeout(5);
  http_->set_read_timeout(30);
  http_->set_write_timeout(30);
  http_->set_tcp_nodelay(true);
  started_at_ = static_cast<int64_t>(std::time(nullptr));

  http_->Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleChat(req, res);
  });
  http_->Get("/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
    SendError(res, ApiError(405, "invalid_request_error", "method_not_allowed",
                            "use POST for /v1/chat/completions"));
  });
  http_->Get("/health",
             [this](const httplib::Request&, httplib::Response& res) { HandleHealth(res); });
  http_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    HandleModels(req, res);
  });
  http_->Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    HandleModels(req, res);
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderMetrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  // Errors httplib produces itself (unknown path, body too large, bad request line) get an
  // OpenAI-style body; handlers' own error bodies are kept.
  http_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        if (res.status == 404)
          SendError(res, ApiError(404, "invalid_request_error", "not_found",
                                  "no such endpoint: " + req.method + " " + req.path));
        else if (res.status == 413)
          SendError(res, TooLarge("the request body is larger than the server's limit"));
        else
          SendError(res, ApiError(res.status, "invalid_request_error", "http_error",
                                  "HTTP error " + std::to_string(res.status)));
        return httplib::Server::HandlerResponse::Handled;
      }));
  http_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(res, ApiError(500, "server_error", "internal_error", what));
      });
  http_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountHttp(req.path.rfind("/v1/models/", 0) == 0 ? "/v1/models/{id}"
                       : (req.path == "/v1/chat/completions" || req.path == "/v1/models" ||
                          req.path == "/health" || req.path == "/metrics")
                           ? req.path
                           : "other",
                       res.status);
    if (options_.log_requests)
      std::fprintf(stderr, "plm serve: %s %s %d (%s)\n", req.method.c_str(), req.path.c_str(),
                   res.status, req.remote_addr.c_str());
  });

  port_ = options_.port == 0
              ? http_->bind_to_any_port(options_.host)
              : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0)
    throw Error(ErrorCode::kIo, "cannot listen on " + options_.host + ":" +
                                    std::to_string(options_.port) +
                                    " (address in use or not available)");
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  return port_;
}

void Server::Wait() {
  if (listener_.joinable()) listener_.join();
}

void Server::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    shutting_down_ = true;
    const auto grace = milliseconds(static_cast<int64_t>(options_.shutdown_grace_s * 1000));
    if (auto engine = this->engine()) engine->Shutdown(grace);
    // Every request has its final event now; give the handlers a moment to write it.
    {
      std::unique_lock<std::mutex> lk(inflight_mu_);
      inflight_cv_.wait_for(lk, std::chrono::seconds(10), [&] { return inflight_ == 0; });
    }
    if (port_ > 0) http_->stop();
  });
}

std::string Server::RenderMetrics() const {
  Metrics::Gauges g;
  g.ready = ready_;
  g.shutting_down = shutting_down_;
  if (auto e = engine()) g.engine = e->stats();
  return metrics_.Render(g);
}

void Server::HandleHealth(httplib::Response& res) const {
  if (shutting_down_)
    SendJson(res, 503, {{"status", "shutting_down"}});
  else if (!ready_)
    SendJson(res, 503, {{"status", "loading"}});
  else
    SendJson(res, 200, {{"status", "ok"}});
}

void Server::HandleModels(const httplib::Request& req, httplib::Response& res) const {
  const Json model = {{"id", options_.model_name},
                      {"object", "model"},
                      {"created", started_at_},
                      {"owned_by", "plm.cpp"}};
  if (req.matches.size() > 1) {
    if (req.matches[1] != options_.model_name)
      SendError(
          res, ApiError(404, "invalid_request_error", "model_not_found",
                        "the model '" + std::string(req.matches[1]) + "' does not exist", "model"));
    else
      SendJson(res, 200, model);
    return;
  }
  SendJson(res, 200, {{"object", "list"}, {"data", Json::array({model})}});
}

void Server::HandleChat(const httplib::Request& req, httplib::Response& res) {
  const auto arrived = Clock::now();
  {
    std::lock_guard<std::mutex> lk(inflight_mu_);
    ++inflight_;
  }
  bool released = false;
  auto release = [&] {
    if (!released) Release();
    released = true;
  };
  auto fail = [&](const ApiError& e) {
    SendError(res, e);
    metrics_.CountRequest(e.status);
    release();
  };
  try {
    if (shutting_down_)
      throw ApiError(503, "service_unavailable", "shutting_down", "the server is shutting down");
    std::shared_ptr<Engine> engine;
    std::shared_ptr<const Pipeline> pipe;
    GenerationConfig defaults;
    {
      std::lock_guard<std::mutex> lk(mu_);
      engine = engine_;
      pipe = pipeline_;
      defaults = defaults_;
    }
    if (!engine || !ready_)
      throw ApiError(503, "service_unavailable", "loading", "the model is still loading");
    if (!options_.api_key.empty() &&
        req.get_header_value("Authorization") != "Bearer " + options_.api_key)
      throw ApiError(401, "authentication_error", "invalid_api_key",
                     "a valid API key is needed (Authorization: Bearer KEY)");
    ParsedChatRequest p = ParseChatRequest(req.body, options_, defaults);
    if (!p.model.empty() && p.model != options_.model_name)
      throw ApiError(404, "invalid_request_error", "model_not_found",
                     "the model '" + p.model + "' does not exist; this server serves '" +
                         options_.model_name + "'",
                     "model");
    // Take a place in the engine before any heavy work.
    auto ticket = engine->TryAcquire();
    if (!ticket) {
      if (engine->shutting_down())
        throw ApiError(503, "service_unavailable", "shutting_down", "the server is shutting down");
      throw ApiError(429, "rate_limit_error", "queue_full",
                     "the server is at capacity (" +
                         std::to_string(options_.engine.max_batch + options_.engine.max_queue) +
                         " requests in flight or queued); retry later");
    }
    FetchMedia(&p, options_);
    // Context budget, from media headers only.
    const int64_t model_ctx = pipe->model().config().text.max_position_embeddings;
    const int64_t ctx = options_.limits.max_context > 0
                            ? std::min(options_.limits.max_context, model_ctx)
                            : model_ctx;
    const int64_t prompt = pipe->CountPromptTokens(p.chat);
    if (!p.max_tokens_given)
      p.chat.generation.max_new_tokens = std::min(p.chat.generation.max_new_tokens, ctx - prompt);
    if (prompt >= ctx || prompt + p.chat.generation.max_new_tokens > ctx)
      throw BadRequest("the prompt needs " + std::to_string(prompt) + " tokens and " +
                           std::to_string(p.chat.generation.max_new_tokens) +
                           " more are requested, but the context is " + std::to_string(ctx) +
                           " tokens (use fewer images, max_tiles, num_frames or max_tokens)",
                       "messages", "context_length_exceeded");
    EngineRequest er;
    er.inputs = pipe->Prepare(p.chat);
    if (er.inputs.len + p.chat.generation.max_new_tokens > ctx)
      throw BadRequest("the prompt is " + std::to_string(er.inputs.len) + " tokens; with " +
                           std::to_string(p.chat.generation.max_new_tokens) +
                           " new tokens it exceeds the context of " + std::to_string(ctx),
                       "messages", "context_length_exceeded");
    er.generation = p.chat.generation;
    er.stop_strings = p.chat.stop_strings;
    er.top_logprobs = p.top_logprobs;
    if (options_.request_timeout_s > 0)
      er.deadline = arrived + milliseconds(static_cast<int64_t>(options_.request_timeout_s * 1000));
    std::shared_ptr<EngineStream> stream;
    try {
      stream = engine->Submit(std::move(*ticket), std::move(er));
    } catch (const Error&) {
      if (engine->shutting_down())
        throw ApiError(503, "service_unavailable", "shutting_down", "the server is shutting down");
      throw;
    }
    // Should anything below throw, the request must not keep running for nobody.
    struct CancelUnlessDisarmed {
      std::shared_ptr<EngineStream> s;
      bool armed = true;
      ~CancelUnlessDisarmed() {
        if (armed) s->Cancel();
      }
    } guard{stream};

    ResponseContext ctx_info;
    ctx_info.id = NewCompletionId();
    ctx_info.created = static_cast<int64_t>(std::time(nullptr));
    ctx_info.model = options_.model_name;
    ctx_info.fingerprint = fingerprint_;
    const int socket =
        FindConnectionSocket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);

    if (!p.stream) {
      EngineEvent all;
      auto checked = Clock::now();
      while (!all.finished) {
        EngineEvent ev;
        if (stream->Next(&ev, milliseconds(50))) MergeEvent(&all, std::move(ev));
        if (Clock::now() - checked >= milliseconds(50)) {
          checked = Clock::now();
          if (PeerClosed(socket)) stream->Cancel();
        }
      }
      metrics_.CountCompletion(all, false);
      if (!Completed(all)) {
        fail(FinishError(all));
        return;
      }
      guard.armed = false;
      SendJson(res, 200, CompletionJson(ctx_info, all, pipe->processor(), p.top_logprobs >= 0));
      metrics_.CountRequest(200);
      release();
      return;
    }

    // Streaming: the content provider runs on this worker thread after the handler returns.
    auto sc = std::make_shared<StreamContext>();
    sc->stream = stream;
    sc->pipeline = pipe;
    sc->ctx = ctx_info;
    sc->socket = socket;
    sc->include_usage = p.include_usage;
    sc->logprobs = p.top_logprobs >= 0;
    metrics_.CountRequest(200);
    guard.armed = false;  // the releaser below cancels it if the stream is cut short
    released = true;      // and gives the in-flight place back
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, sc](size_t, httplib::DataSink& sink) {
          if (!sc->started) {
            sc->started = true;
            return WriteEvent(
                sink, Dump(ChunkJson(sc->ctx, {{"role", "assistant"}, {"content", ""}}, nullptr,
                                     nullptr, nullptr)));
          }
          const auto now = Clock::now();
          if (now - sc->checked >= milliseconds(50)) {
            sc->checked = now;
            if (PeerClosed(sc->socket)) {
              sc->stream->Cancel();
              return false;
            }
          }
          EngineEvent ev;
          if (!sc->stream->Next(&ev, milliseconds(50))) return true;
          if (!ev.text.empty() || !ev.logprobs.empty()) {
            const Json lp = sc->logprobs && !ev.logprobs.empty()
                                ? LogprobsJson(ev.logprobs, sc->pipeline->processor())
                                : Json(nullptr);
            if (!WriteEvent(
                    sink, Dump(ChunkJson(sc->ctx, {{"content", ev.text}}, lp, nullptr, nullptr)))) {
              sc->stream->Cancel();
              return false;
            }
          }
          if (!ev.finished) return true;
          sc->finished = true;
          metrics_.CountCompletion(ev, true);
          if (ev.finish_reason == FinishReason::kCancelled) return false;
          bool ok = true;
          if (Completed(ev)) {
            ok = WriteEvent(sink,
                            Dump(ChunkJson(sc->ctx, Json::object(), nullptr,
                                           OpenAiFinishReason(ev.finish_reason), UsageJson(ev))));
            if (ok && sc->include_usage) {
              Json u = ChunkJson(sc->ctx, Json::object(), nullptr, nullptr, UsageJson(ev));
              u["choices"] = Json::array();
              ok = WriteEvent(sink, Dump(u));
            }
          } else {
            ok = WriteEvent(sink, Dump(FinishError(ev).ToJson()));
          }
          if (ok) ok = WriteEvent(sink, "[DONE]");
          if (ok) sink.done();
          return ok;
        },
        [this, sc](bool) {
          if (!sc->finished) {
            // The client went away (or a write failed): stop the request and count how it ended.
            sc->stream->Cancel();
            EngineEvent ev;
            const auto until = Clock::now() + std::chrono::seconds(120);
            while (Clock::now() < until)
              if (sc->stream->Next(&ev, milliseconds(100)) && ev.finished) {
                metrics_.CountCompletion(ev, true);
                break;
              }
          }
          Release();
        });
  } catch (const ApiError& e) {
    fail(e);
  } catch (const Error& e) {
    fail(FromPlmError(e));
  } catch (const std::bad_alloc&) {
    fail(ApiError(500, "server_error", "out_of_memory", "the server ran out of memory"));
  } catch (const std::exception& e) {
    fail(ApiError(500, "server_error", "internal_error", e.what()));
  }
}

}  // namespace plm::server
