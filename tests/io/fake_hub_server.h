// A loopback HTTP/1.1 server that answers like the Hugging Face Hub, for download tests:
//   GET  /api/models/{repo}/revision/{rev}     JSON with "sha" and "siblings"
//   HEAD/GET /{repo}/resolve/{rev}/{file}      ETag / X-Repo-Commit; large files 302 to the CDN
//                                              with X-Linked-Etag and X-Linked-Size
//   GET  /cdn/{repo}/{file}                    the content, on http://localhost:{port} (another
//                                              origin than the endpoint's 127.0.0.1), with Range
// Gated repos answer 401 without the token; unknown repos, revisions and files answer 404 with
// the Hub's X-Error-Code. One request per connection, handled on one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace plm::test {

struct RecordedRequest {
  std::string method;
  std::string path;
  std::string authorization;
  std::string range;
};

class FakeHub {
 public:
  FakeHub();  // listens on 127.0.0.1 at an ephemeral port
  ~FakeHub();
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  static constexpr const char* kToken = "hf_fake_test_token";

  // Serves the regular files directly inside `dir` as repo `id` (branch "main").
  void AddRepo(const std::string& id, const std::string& dir, bool gated = false);
  // Requests for `old_id` get a relative redirect to `new_id`, like a renamed repo.
  void RenameRepo(const std::string& old_id, const std::string& new_id);
  std::string Commit(const std::string& id) const;
  // The blob name the client must use: the ETag (or X-Linked-Etag) without quotes.
  std::string Etag(const std::string& id, const std::string& file) const;
  bool IsLfs(const std::string& id, const std::string& file) const;

  // The next CDN transfer of `file` sends only `bytes` of the body, then drops the connection.
  void CutNextTransferAfter(const std::string& file, int64_t bytes);
  // The next CDN request answers 403, like an expired signed URL.
  void RefuseNextCdnRequest() { refuse_cdn_ = true; }
  // The file-list API answers a plain 404, like a mirror without it.
  void set_api_enabled(bool on) { api_enabled_ = on; }

  std::vector<RecordedRequest> Requests() const;
  size_t RequestCount() const;
  void ClearRequests();

 private:
  struct File {
    std::string data;
    std::string etag;  // header value as sent, quotes included
    bool lfs = false;
  };
  struct Repo {
    std::string commit;
    bool gated = false;
    std::map<std::string, File> files;
  };
  struct Reply {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    int64_t send_only = -1;  // cut the body after this many bytes
  };

  void Serve();
  void Handle(int fd);
  Reply Route(const std::string& method, const std::string& path,
              const std::map<std::string, std::string>& headers);
  Reply Content(const File& f, const std::string& range, bool head,
                const std::vector<std::pair<std::string, std::string>>& extra);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> api_enabled_{true};
  std::atomic<bool> refuse_cdn_{false};
  mutable std::mutex mu_;
  std::map<std::string, Repo> repos_;
  std::map<std::string, std::string> renamed_;
  std::string cut_file_;
  int64_t cut_after_ = -1;
  std::vector<RecordedRequest> log_;
  std::thread thread_;
};

}  // namespace plm::test
