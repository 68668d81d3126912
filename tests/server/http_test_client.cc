#include "server/http_test_client.h"

#include <curl/curl.h>

#include <fstream>
#include <iterator>
#include <mutex>

namespace plm::test {

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Collector {
  std::string body;
  std::string pending;  // SSE bytes not yet split into events
  const std::function<bool(const std::string&)>* on_event = nullptr;
  bool aborted = false;
};

size_t OnData(char* ptr, size_t size, size_t n, void* user) {
  auto* c = static_cast<Collector*>(user);
  const size_t len = size * n;
  c->body.append(ptr, len);
  if (c->on_event == nullptr) return len;
  c->pending.append(ptr, len);
  for (size_t at; (at = c->pending.find("\n\n")) != std::string::npos;) {
    const std::string event = c->pending.substr(0, at);
    c->pending.erase(0, at + 2);
    if (event.rfind("data: ", 0) != 0) continue;  // comments and other fields
    if (!(*c->on_event)(event.substr(6))) {
      c->aborted = true;
      return 0;  // drop the connection
    }
  }
  return len;
}

HttpResult Perform(const std::string& method, const std::string& url, const std::string& body,
                   const std::vector<std::string>& headers, long timeout_s, Collector* c) {
  GlobalInit();
  HttpResult r;
  CURL* h = curl_easy_init();
  curl_slist* hs = nullptr;
  for (const auto& x : headers) hs = curl_slist_append(hs, x.c_str());
  if (!body.empty() || method == "POST") {
    bool has_type = false;
    for (const auto& x : headers) has_type |= x.rfind("Content-Type:", 0) == 0;
    if (!has_type) hs = curl_slist_append(hs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  char* ct = nullptr;
  curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) r.content_type = ct;
  if (rc != CURLE_OK && !c->aborted) r.error = curl_easy_strerror(rc);
  curl_slist_free_all(hs);
  curl_easy_cleanup(h);
  r.body = std::move(c->body);
  return r;
}

}  // namespace

HttpResult HttpCall(const std::string& method, const std::string& url, const std::string& body,
                    const std::vector<std::string>& headers, long timeout_s) {
  Collector c;
  return Perform(method, url, body, headers, timeout_s, &c);
}

HttpResult StreamSse(const std::string& url, const std::string& body,
                     const std::function<bool(const std::string&)>& on_event, long timeout_s) {
  Collector c;
  c.on_event = &on_event;
  return Perform("POST", url, body, {}, timeout_s, &c);
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace plm::test
