// The HTTP front of `plm serve`: OpenAI-compatible chat completions (plain and streamed as
// server-sent events), /v1/models, /health and /metrics, on cpp-httplib, with requests run by a
// plm::Engine.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "plm/pipeline.h"
#include "plm/scheduler.h"
#include "server/metrics.h"
#include "server/server_options.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace plm::server {

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Shutdown() then Wait()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port and answers on background threads; /health reports "loading" (503) until
  // SetPipeline. Returns the bound port. Throws plm::Error (kIo) when it cannot bind.
  int Start();
  // The model is loaded: requests are served from now on. `defaults` is the generation config
  // requests start from (the model's, with the `plm serve` flags applied).
  void SetPipeline(std::shared_ptr<const Pipeline> pipeline, const GenerationConfig& defaults);
  // Graceful stop: new requests get 503, in-flight ones get up to shutdown_grace_s to finish
  // (then they are cancelled and told so), and the listener stops. Idempotent, any thread.
  void Shutdown();
  // Blocks until the listener has stopped.
  void Wait();

  int port() const { return port_; }
  bool ready() const { return ready_; }
  std::shared_ptr<Engine> engine() const;
  const Metrics& metrics() const { return metrics_; }
  std::string RenderMetrics() const;

 private:
  void HandleChat(const httplib::Request& req, httplib::Response& res);
  void HandleHealth(httplib::Response& res) const;
  void HandleModels(const httplib::Request& req, httplib::Response& res) const;
  void Release();  // one in-flight request is done

  ServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
  int64_t started_at_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutting_down_{false};
  mutable std::mutex mu_;
  std::shared_ptr<const Pipeline> pipeline_;
  std::shared_ptr<Engine> engine_;
  GenerationConfig defaults_;
  std::string fingerprint_;
  Metrics metrics_;
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;
  int64_t inflight_ = 0;  // chat requests being handled or streamed
  std::once_flag shutdown_once_;
};

}  // namespace plm::server
