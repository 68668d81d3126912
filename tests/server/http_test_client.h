// A small libcurl client for the server tests: plain requests and server-sent-event streams.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace plm::test {

struct HttpResult {
  long status = 0;  // 0: no response (error says why)
  std::string body;
  std::string content_type;
  std::string error;
};

HttpResult HttpCall(const std::string& method, const std::string& url, const std::string& body = "",
                    const std::vector<std::string>& headers = {}, long timeout_s = 120);

// POSTs `body` and hands each SSE "data:" payload to `on_event`; returning false from it drops
// the connection (a client that goes away). `body` of the result holds the raw stream.
HttpResult StreamSse(const std::string& url, const std::string& body,
                     const std::function<bool(const std::string& data)>& on_event,
                     long timeout_s = 120);

std::string Base64(const std::string& bytes);
std::string ReadFileBytes(const std::string& path);

}  // namespace plm::test
