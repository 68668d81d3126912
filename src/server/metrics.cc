#include "server/metrics.h"

#include <cstdio>
#include <sstream>

namespace plm::server {

namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void Header(std::ostringstream& o, const std::string& name, const std::string& type,
            const std::string& help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

void Gauge(std::ostringstream& o, const std::string& name, const std::string& help, double v) {
  Header(o, name, "gauge", help);
  o << name << " " << Num(v) << "\n";
}

void Counter(std::ostringstream& o, const std::string& name, const std::string& help, double v) {
  Header(o, name, "counter", help);
  o << name << " " << Num(v) << "\n";
}

const std::vector<double> kLatencyBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                             5,    10,    20,   30,  60,   120, 300, 600};

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

std::string Histogram::Render(const std::string& name, const std::string& help) const {
  std::ostringstream o;
  Header(o, name, "histogram", help);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    o << name << "_bucket{le=\"" << Num(bounds_[i]) << "\"} " << cum << "\n";
  }
  cum += counts_.back();
  o << name << "_bucket{le=\"+Inf\"} " << cum << "\n";
  o << name << "_sum " << Num(sum_) << "\n" << name << "_count " << count_ << "\n";
  return o.str();
}

Metrics::Metrics()
    : ttft_(kLatencyBuckets),
      total_(kLatencyBuckets),
      queue_(kLatencyBuckets),
      tokens_per_s_({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}) {}

void Metrics::CountRequest(int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_by_status_[status];
}

void Metrics::CountHttp(const std::string& path, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++http_[{path, status}];
}

void Metrics::CountCompletion(const EngineEvent& f, bool stream) {
  std::lock_guard<std::mutex> lk(mu_);
  ++finish_reasons_[FinishReasonName(f.finish_reason)];
  prompt_tokens_ += static_cast<uint64_t>(f.prompt_tokens);
  completion_tokens_ += static_cast<uint64_t>(f.completion_tokens);
  cached_tokens_ += static_cast<uint64_t>(f.cached_tokens);
  if (stream) ++streamed_;
  queue_.Observe(f.timings.queue_s);
  if (f.timings.first_token_s > 0) ttft_.Observe(f.timings.first_token_s);
  total_.Observe(f.timings.total_s);
  const double gen_s = f.timings.total_s - f.timings.first_token_s;
  if (f.completion_tokens > 1 && f.timings.first_token_s > 0 && gen_s > 0)
    tokens_per_s_.Observe(static_cast<double>(f.completion_tokens - 1) / gen_s);
}

std::string Metrics::Render(const Gauges& g) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::ostringstream o;
  Gauge(o, "plm_ready", "1 when the model is loaded and the server accepts requests",
        g.ready && !g.shutting_down ? 1 : 0);
  Header(o, "plm_requests_total", "counter",
         "Chat completion requests by HTTP status (streams count as 200 once started)");
  for (const auto& [status, n] : requests_by_status_)
    o << "plm_requests_total{status=\"" << status << "\"} " << n << "\n";
  Header(o, "plm_http_requests_total", "counter", "HTTP requests by path and status");
  for (const auto& [key, n] : http_)
    o << "plm_http_requests_total{path=\"" << key.first << "\",status=\"" << key.second << "\"} "
      << n << "\n";
  Header(o, "plm_completions_total", "counter",
         "Requests the engine ran, by finish reason (stop, length, cancelled, timeout, "
         "shutdown, error)");
  for (const auto& [reason, n] : finish_reasons_)
    o << "plm_completions_total{reason=\"" << reason << "\"} " << n << "\n";
  Counter(o, "plm_streamed_completions_total", "Completions delivered as server-sent events",
          static_cast<double>(streamed_));
  Counter(o, "plm_prompt_tokens_total", "Prompt tokens of completed requests",
          static_cast<double>(prompt_tokens_));
  Counter(o, "plm_prompt_tokens_cached_total",
          "Prompt tokens taken from the prefix cache instead of being recomputed",
          static_cast<double>(cached_tokens_));
  Counter(o, "plm_completion_tokens_total", "Generated tokens",
          static_cast<double>(completion_tokens_));
  Gauge(o, "plm_queue_depth", "Requests waiting for a slot or being preprocessed",
        static_cast<double>(g.engine.queued + g.engine.reserved));
  Gauge(o, "plm_queued_requests", "Requests waiting for a slot in the engine",
        static_cast<double>(g.engine.queued));
  Gauge(o, "plm_active_requests", "Requests in the engine (vision, prefill or decode)",
        static_cast<double>(g.engine.active));
  Gauge(o, "plm_active_sequences", "Sequences generating tokens (batched decode)",
        static_cast<double>(g.engine.decoding));
  Counter(o, "plm_decode_steps_total", "Batched decode steps",
          static_cast<double>(g.engine.decode_steps));
  Counter(o, "plm_decode_rows_total", "Sequences carried by the batched decode steps",
          static_cast<double>(g.engine.decode_rows));
  Gauge(o, "plm_prefix_cache_entries", "KV caches kept for prefix reuse",
        static_cast<double>(g.engine.prefix_cache_entries));
  Gauge(o, "plm_prefix_cache_bytes", "Bytes of KV cache kept for prefix reuse",
        static_cast<double>(g.engine.prefix_cache_bytes));
  Counter(o, "plm_prefix_cache_hits_total", "Requests that reused a cached prefix",
          static_cast<double>(g.engine.prefix_hits));
  o << ttft_.Render("plm_time_to_first_token_seconds",
                    "Time from arrival in the engine to the first generated token");
  o << total_.Render("plm_request_duration_seconds",
                     "Time from arrival in the engine to the last token");
  o << queue_.Render("plm_queue_wait_seconds", "Time waiting for a slot in the engine");
  o << tokens_per_s_.Render("plm_decode_tokens_per_second",
                            "Per-request generation speed after the first token");
  return o.str();
}

}  // namespace plm::server
