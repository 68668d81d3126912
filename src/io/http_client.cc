#include "io/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <utility>

#include "plm/error.h"

namespace plm {

namespace {

void GlobalInitOnce() {
  // curl_global_init is not thread-safe on older libcurl; do it once for the process.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// State shared with the libcurl callbacks of one request.
struct Transfer {
  CURL* curl = nullptr;
  HttpResponse* response = nullptr;
  const HttpBodySink* sink = nullptr;
  size_t max_body = 0;
  bool to_sink = false;  // decided once the headers of the final response are in
  bool aborted = false;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  const std::string line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->response->headers.clear();  // a new (possibly interim 1xx) response starts
    return n;
  }
  if (line == "\r\n" || line == "\n") {
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    t->response->status = status;
    if (status >= 200 && status < 300 && t->sink != nullptr) {
      t->to_sink = true;
      if (t->sink->on_start && !t->sink->on_start(*t->response)) {
        t->aborted = true;
        return 0;
      }
    }
    return n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string::npos)
    t->response->headers[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  return n;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->to_sink) {
    if (t->sink->on_data && !t->sink->on_data(data, n)) {
      t->aborted = true;
      return 0;
    }
    t->response->body_bytes += static_cast<int64_t>(n);
    return n;
  }
  std::string& body = t->response->body;
  if (body.size() < t->max_body) body.append(data, std::min(n, t->max_body - body.size()));
  return n;
}

}  // namespace

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

HttpClient::HttpClient(std::string user_agent)
    : curl_(nullptr), user_agent_(std::move(user_agent)) {
  GlobalInitOnce();
  curl_ = curl_easy_init();
  if (curl_ == nullptr) throw Error(ErrorCode::kInternal, "libcurl: curl_easy_init failed");
}

HttpClient::~HttpClient() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::Perform(const std::string& method, const std::string& url,
                                 const std::vector<std::string>& headers,
                                 const HttpTimeouts& timeouts, const HttpBodySink* sink,
                                 size_t max_body) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);  // keeps the connection cache, drops the previous request's options
  HttpResponse response;
  Transfer t;
  t.curl = c;
  t.response = &response;
  t.sink = sink;
  t.max_body = max_body;

  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM-based timeouts in a threaded program
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L << 10);  // fewer, larger writes for big files
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(timeouts.connect_s));
  if (timeouts.total_s > 0)
    curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(timeouts.total_s));
  if (timeouts.stall_s > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(timeouts.stall_s));
  }
  if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_slist_free_all(list);
    throw Error(ErrorCode::kInternal, "HttpClient: unsupported method " + method);
  }

  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  response.status = status;
  char* redirect = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect != nullptr)
    response.redirect_url = redirect;
  if (rc != CURLE_OK) {
    if (t.aborted)
      response.error = "transfer aborted";
    else
      response.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
  }
  curl_slist_free_all(list);
  return response;
}

std::string UrlOrigin(const std::string& url) {
  GlobalInitOnce();
  CURLU* u = curl_url();
  if (u == nullptr) return "";
  std::string origin;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
      origin = Lower(std::string(scheme) + "://" + host + ":" + port);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return origin;
}

std::string PercentEncode(const std::string& s, const std::string& keep) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || keep.find(static_cast<char>(c)) != std::string::npos) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace plm
