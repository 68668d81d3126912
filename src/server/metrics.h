// Server counters and latency histograms, rendered in the Prometheus text format (GET /metrics).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "plm/scheduler.h"

namespace plm::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // "# HELP/# TYPE" lines and the _bucket/_sum/_count series.
  std::string Render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  // A finished /v1/chat/completions request and its HTTP status (200 also for streams).
  void CountRequest(int status);
  // A request the engine ran: tokens, finish reason and latencies.
  void CountCompletion(const EngineEvent& final_event, bool stream);
  void CountHttp(const std::string& path, int status);

  struct Gauges {
    bool ready = false;
    bool shutting_down = false;
    EngineStats engine;
  };
  std::string Render(const Gauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> requests_by_status_;
  std::map<std::string, uint64_t> finish_reasons_;
  std::map<std::pair<std::string, int>, uint64_t> http_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, cached_tokens_ = 0;
  uint64_t streamed_ = 0;
  Histogram ttft_, total_, queue_, tokens_per_s_;
};

}  // namespace plm::server
