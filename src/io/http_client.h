// One-request-at-a-time HTTP client over libcurl. It never follows redirects itself: the Hub
// download logic decides which redirects to follow and where credentials may go.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace plm {

struct HttpResponse {
  long status = 0;                             // 0 when no response arrived
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;                            // the body when no sink took it (capped)
  std::string redirect_url;                    // absolute target of a 3xx Location header
  std::string error;                           // libcurl's reason when the transfer failed
  int64_t body_bytes = 0;                      // bytes handed to the sink

  // The value of the header `lower_name`, or "" when absent.
  std::string Header(const std::string& lower_name) const;
};

struct HttpTimeouts {
  int connect_s = 10;  // to establish the connection
  int total_s = 0;     // whole request; 0 = unlimited (large downloads)
  int stall_s = 10;    // abort when less than one byte per second arrives for this long
};

// Takes the body of a 2xx response as it arrives. on_start sees the status and headers first;
// either callback returns false to abort the transfer (the response then carries an error).
struct HttpBodySink {
  std::function<bool(const HttpResponse& head)> on_start;
  std::function<bool(const char* data, size_t size)> on_data;
};

class HttpClient {
 public:
  explicit HttpClient(std::string user_agent);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method` (GET or HEAD) to `url` with extra `headers` ("Name: value"). Transport failures
  // do not throw: they fill response.error (after a partial body, status is still set). Bodies
  // that no sink takes are kept up to `max_body` bytes.
  HttpResponse Perform(const std::string& method, const std::string& url,
                       const std::vector<std::string>& headers, const HttpTimeouts& timeouts,
                       const HttpBodySink* sink = nullptr, size_t max_body = 1 << 20);

 private:
  void* curl_;  // CURL*, kept across requests so connections are reused
  std::string user_agent_;
};

// "scheme://host:port" with the port made explicit, lower-case; "" when `url` does not parse.
// Credentials go only to URLs with the Hub endpoint's origin.
std::string UrlOrigin(const std::string& url);

// Percent-encodes every byte except RFC 3986 unreserved characters and those in `keep`.
std::string PercentEncode(const std::string& s, const std::string& keep);

}  // namespace plm
