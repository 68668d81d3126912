// Load test for `plm serve`: N concurrent streaming clients send a fixed number of chat requests
// over loopback and the program reports throughput, latency percentiles, failures and the
// server's memory before and after.
//
//   server_load --model DIR [--dtype q8] --clients 8 --requests 32 --max-tokens 32 [--image F]
//       starts the server in this process on a loopback port (RSS is this process's);
//   server_load --url http://127.0.0.1:8080 --pid PID ...
//       drives a running `plm serve` (RSS read from /proc/PID).
//
// Bounded in time: no request starts after --time-limit seconds and each has a client timeout.
#include <curl/curl.h>
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "core/json.h"
#include "server/http_server.h"

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t RssBytes(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += k[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += k[(acc << (6 - bits)) & 63];
  while (out.size() % 4) out += '=';
  return out;
}

struct Result {
  bool ok = false;
  std::string error;
  double ttft_s = 0, total_s = 0;
  int64_t completion_tokens = 0, prompt_tokens = 0, cached_tokens = 0;
};

struct StreamState {
  std::string pending;
  Result* r;
  Clock::time_point start;
  bool done = false;
};

size_t OnData(char* p, size_t size, size_t n, void* user) {
  auto* s = static_cast<StreamState*>(user);
  s->pending.append(p, size * n);
  for (size_t at; (at = s->pending.find("\n\n")) != std::string::npos;) {
    const std::string ev = s->pending.substr(0, at);
    s->pending.erase(0, at + 2);
    if (ev.rfind("data: ", 0) != 0) continue;
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      s->done = true;
      continue;
    }
    const plm::Json j = plm::Json::parse(data, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.contains("error")) s->r->error = j["error"].value("message", "error");
    if (j.contains("choices") && !j["choices"].empty()) {
      const auto& d = j["choices"][0]["delta"];
      if (s->r->ttft_s == 0 && d.contains("content") && !d["content"].get<std::string>().empty())
        s->r->ttft_s = Since(s->start);
    }
    if (j.contains("usage")) {
      s->r->completion_tokens = j["usage"].value("completion_tokens", int64_t{0});
      s->r->prompt_tokens = j["usage"].value("prompt_tokens", int64_t{0});
      if (j["usage"].contains("prompt_tokens_details"))
        s->r->cached_tokens = j["usage"]["prompt_tokens_details"].value("cached_tokens", 0);
    }
  }
  return size * n;
}

Result OneRequest(const std::string& url, const std::string& body, long timeout_s) {
  Result r;
  StreamState s;
  s.r = &r;
  s.start = Clock::now();
  CURL* h = curl_easy_init();
  curl_slist* hs = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, (url + "/v1/chat/completions").c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hs);
  curl_easy_cleanup(h);
  r.total_s = Since(s.start);
  if (rc != CURLE_OK)
    r.error = curl_easy_strerror(rc);
  else if (status != 200)
    r.error = "HTTP " + std::to_string(status) + ": " + s.pending.substr(0, 200);
  else if (!s.done && r.error.empty())
    r.error = "stream ended without [DONE]";
  r.ok = r.error.empty();
  return r;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load test for plm serve: concurrent streaming chat requests over loopback"};
  std::string url, pid, model, dtype = "f32", image, prompt = "Describe the picture in detail.";
  int clients = 4, requests = 16, rounds = 1, threads = 0, max_batch = 8, max_tiles = 0;
  int64_t max_tokens = 32;
  double prefix_cache_mb = 512;
  double time_limit = 600;
  long request_timeout = 300;
  bool json = false;
  auto* u = app.add_option("--url", url, "A running server (e.g. http://127.0.0.1:8080)");
  app.add_option("--pid", pid, "Process id of that server, for its RSS");
  auto* m = app.add_option("--model", model, "Start a server in this process for this model");
  u->excludes(m);
  app.add_option("--dtype", dtype, "In-process server: f32, bf16, q8 or q4");
  app.add_option("--threads", threads, "In-process server: compute threads (0: all cores)");
  app.add_option("--max-batch", max_batch, "In-process server: requests in flight at once");
  app.add_option("--prefix-cache-mb", prefix_cache_mb, "In-process server: prefix cache size");
  app.add_option("--clients", clients, "Concurrent streaming clients")->check(CLI::Range(1, 1024));
  app.add_option("--requests", requests, "Requests in all")->check(CLI::Range(1, 1000000));
  app.add_option("--rounds", rounds, "Repeat the whole load this many times (RSS after each)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-tokens", max_tokens, "max_tokens per request");
  app.add_option("--image", image, "Attach this image (as a data: URL) to every request");
  app.add_option("--max-tiles", max_tiles, "max_tiles per request (0: the server's default)");
  app.add_option("--prompt", prompt, "Prompt text (a request number is appended)");
  app.add_option("--time-limit", time_limit, "Start no request after this many seconds");
  app.add_option("--request-timeout", request_timeout, "Client timeout per request (s)");
  app.add_flag("--json", json, "Print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (url.empty() && model.empty()) {
    std::fprintf(stderr, "server_load: give --url or --model\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::unique_ptr<plm::server::Server> server;
  if (!model.empty()) {
    plm::server::ServerOptions o;
    o.port = 0;
    o.model_name = "load";
    o.engine.max_batch = max_batch;
    o.engine.max_queue = std::max(clients, 1) + 8;
    o.engine.prefix_cache_bytes = static_cast<int64_t>(prefix_cache_mb * (1 << 20));
    server = std::make_unique<plm::server::Server>(o);
    url = "http://127.0.0.1:" + std::to_string(server->Start());
    plm::LoadOptions lo;
    lo.compute = plm::ParseComputeType(dtype);
    lo.threads = threads;
    std::shared_ptr<const plm::Pipeline> pipe = plm::Pipeline::FromPretrained(model, lo);
    plm::GenerationConfig g = pipe->default_generation();
    g.max_new_tokens = max_tokens;
    server->SetPipeline(pipe, g);
    pid = "self";
  }

  std::string image_url;
  if (!image.empty()) {
    std::ifstream f(image, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), {});
    if (bytes.empty()) {
      std::fprintf(stderr, "server_load: cannot read %s\n", image.c_str());
      return 3;
    }
    image_url = "data:image/png;base64," + Base64(bytes);
  }
  auto body_for = [&](int i) {
    plm::Json content = plm::Json::array();
    if (!image_url.empty())
      content.push_back({{"type", "image_url"}, {"image_url", {{"url", image_url}}}});
    content.push_back({{"type", "text"}, {"text", prompt + " (" + std::to_string(i) + ")"}});
    plm::Json b = {{"messages", plm::Json::array({{{"role", "user"}, {"content", content}}})},
                   {"max_tokens", max_tokens},
                   {"stream", true}};
    if (max_tiles > 0) b["max_tiles"] = max_tiles;
    return b.dump();
  };

  // One warm-up request so the baseline RSS includes what every request touches once.
  const Result warm = OneRequest(url, body_for(-1), request_timeout);
  if (!warm.ok) {
    std::fprintf(stderr, "server_load: warm-up request failed: %s\n", warm.error.c_str());
    return 1;
  }
  if (pid == "self") malloc_trim(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int64_t rss_before = pid.empty() ? -1 : RssBytes(pid);

  // Each round sends `requests` requests; the server's RSS is read after every round (a leak
  // grows it round after round, while caches that fill once do not).
  const size_t total = static_cast<size_t>(requests) * static_cast<size_t>(rounds);
  std::vector<Result> results(total);
  std::vector<bool> started(total, false);
  std::vector<int64_t> rss_rounds;
  const auto t0 = Clock::now();
  double busy_s = 0;
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> next{0};
    const auto r0 = Clock::now();
    std::vector<std::thread> pool;
    for (int c = 0; c < clients; ++c)
      pool.emplace_back([&, round] {
        for (int i; (i = next++) < requests;) {
          if (Since(t0) > time_limit) break;
          const size_t k =
              static_cast<size_t>(round) * static_cast<size_t>(requests) + static_cast<size_t>(i);
          started[k] = true;
          results[k] = OneRequest(url, body_for(static_cast<int>(k)), request_timeout);
        }
      });
    for (auto& t : pool) t.join();
    busy_s += Since(r0);
    // Let the server go idle (it trims its heap then) before reading its memory.
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    rss_rounds.push_back(pid.empty() ? -1 : RssBytes(pid));
  }
  const double wall = busy_s;
  const int64_t rss_after = rss_rounds.back();
  // KV caches the server keeps on purpose for prefix reuse (bounded by --prefix-cache-mb).
  int64_t prefix_cache_bytes = -1;
  {
    CURL* h = curl_easy_init();
    std::string metrics;
    curl_easy_setopt(h, CURLOPT_URL, (url + "/metrics").c_str());
    curl_easy_setopt(
        h, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* user) {
          static_cast<std::string*>(user)->append(p, size * n);
          return size * n;
        });
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &metrics);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(h) == CURLE_OK) {
      const size_t at = metrics.find("\nplm_prefix_cache_bytes ");
      if (at != std::string::npos) prefix_cache_bytes = std::stoll(metrics.substr(at + 24));
    }
    curl_easy_cleanup(h);
  }

  int ok = 0, failed = 0, not_started = 0;
  int64_t tokens = 0, prompt_tokens = 0, cached = 0;
  std::vector<double> lat, ttft;
  std::string first_error;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!started[i]) {
      ++not_started;
      continue;
    }
    const Result& r = results[i];
    if (!r.ok) {
      ++failed;
      if (first_error.empty()) first_error = r.error;
      continue;
    }
    ++ok;
    tokens += r.completion_tokens;
    prompt_tokens += r.prompt_tokens;
    cached += r.cached_tokens;
    lat.push_back(r.total_s);
    ttft.push_back(r.ttft_s);
  }
  plm::Json out = {{"url", url},
                   {"clients", clients},
                   {"requests", requests * rounds},
                   {"ok", ok},
                   {"failed", failed},
                   {"not_started", not_started},
                   {"first_error", first_error},
                   {"wall_s", wall},
                   {"completion_tokens", tokens},
                   {"prompt_tokens", prompt_tokens},
                   {"cached_prompt_tokens", cached},
                   {"tokens_per_s", wall > 0 ? static_cast<double>(tokens) / wall : 0.0},
                   {"requests_per_s", wall > 0 ? ok / wall : 0.0},
                   {"latency_p50_s", Percentile(lat, 0.5)},
                   {"latency_p99_s", Percentile(lat, 0.99)},
                   {"ttft_p50_s", Percentile(ttft, 0.5)},
                   {"ttft_p99_s", Percentile(ttft, 0.99)},
                   {"rss_before_bytes", rss_before},
                   {"rss_after_bytes", rss_after},
                   {"rss_after_each_round_bytes", rss_rounds},
                   {"prefix_cache_bytes", prefix_cache_bytes}};
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("requests: %d ok, %d failed, %d not started (clients %d)\n", ok, failed,
                not_started, clients);
    if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
    std::printf("wall %.2f s | %lld completion tokens | %.1f tok/s | %.2f req/s\n", wall,
                static_cast<long long>(tokens), out["tokens_per_s"].get<double>(),
                out["requests_per_s"].get<double>());
    std::printf("latency p50 %.3f s p99 %.3f s | first token p50 %.3f s p99 %.3f s\n",
                Percentile(lat, 0.5), Percentile(lat, 0.99), Percentile(ttft, 0.5),
                Percentile(ttft, 0.99));
    std::printf("prompt tokens %lld (%lld from the prefix cache)\n",
                static_cast<long long>(prompt_tokens), static_cast<long long>(cached));
    if (rss_before > 0 && rounds > 1) {
      std::printf("server RSS after each round:");
      for (int64_t r : rss_rounds) std::printf(" %.1f", r / 1048576.0);
      std::printf(" MiB\n");
    }
    if (rss_before > 0)
      std::printf(
          "server RSS before %.1f MiB, after %.1f MiB (%+.1f MiB; prefix cache holds %.1f MiB)\n",
          rss_before / 1048576.0, rss_after / 1048576.0, (rss_after - rss_before) / 1048576.0,
          prefix_cache_bytes / 1048576.0);
  }
  if (server) {
    server->Shutdown();
    server->Wait();
  }
  return failed == 0 ? 0 : 1;
}
