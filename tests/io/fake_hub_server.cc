#include "fake_hub_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

namespace plm::test {

namespace {

// Stable pseudo-hashes standing in for the Hub's git-sha1 / sha256 ETags and commit ids:
// std::hash of the data (fast even in sanitizer builds), stretched with splitmix64.
std::string HexDigest(const std::string& data, size_t hex_chars) {
  uint64_t h = std::hash<std::string>{}(data);
  std::string out;
  while (out.size() < hex_chars) {
    h += 0x9e3779b97f4a7c15ull;
    uint64_t z = h;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(z));
    out += buf;
  }
  return out.substr(0, hex_chars);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::string data(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  return data;
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool StartsWith(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

void SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t k = ::send(fd, data, n, MSG_NOSIGNAL);
    if (k <= 0) return;  // the client went away: nothing to do
    data += k;
    n -= static_cast<size_t>(k);
  }
}

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 206:
      return "Partial Content";
    case 302:
      return "Found";
    case 307:
      return "Temporary Redirect";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 416:
      return "Range Not Satisfiable";
    default:
      return "Status";
  }
}

}  // namespace

FakeHub::FakeHub() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("FakeHub: cannot listen on 127.0.0.1");
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

FakeHub::~FakeHub() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

void FakeHub::AddRepo(const std::string& id, const std::string& dir, bool gated) {
  Repo repo;
  repo.gated = gated;
  repo.commit = HexDigest("commit:" + id, 40);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    File f;
    f.data = ReadFile(e.path().string());
    const std::string name = e.path().filename().string();
    // Like the Hub: weights (and anything big) are LFS files with a sha256 ETag on the CDN.
    f.lfs = name.find(".safetensors") != std::string::npos || f.data.size() > (1 << 20);
    const std::string digest = HexDigest(f.data, f.lfs ? 64 : 40);
    // One small file gets a weak ETag, which clients must normalize like the strong ones.
    f.etag = (name == "generation_config.json" ? "W/\"" : "\"") + digest + "\"";
    repo.files[name] = std::move(f);
  }
  std::lock_guard<std::mutex> lock(mu_);
  repos_[id] = std::move(repo);
}

void FakeHub::RenameRepo(const std::string& old_id, const std::string& new_id) {
  std::lock_guard<std::mutex> lock(mu_);
  renamed_[old_id] = new_id;
}

void FakeHub::CutNextTransferAfter(const std::string& file, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  cut_file_ = file;
  cut_after_ = bytes;
}

std::string FakeHub::Commit(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return repos_.at(id).commit;
}

std::string FakeHub::Etag(const std::string& id, const std::string& file) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string e = repos_.at(id).files.at(file).etag;
  if (StartsWith(e, "W/")) e = e.substr(2);
  return e.substr(1, e.size() - 2);
}

bool FakeHub::IsLfs(const std::string& id, const std::string& file) const {
  std::lock_guard<std::mutex> lock(mu_);
  return repos_.at(id).files.at(file).lfs;
}

std::vector<RecordedRequest> FakeHub::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

size_t FakeHub::RequestCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_.size();
}

void FakeHub::ClearRequests() {
  std::lock_guard<std::mutex> lock(mu_);
  log_.clear();
}

void FakeHub::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Handle(fd);
    ::close(fd);
  }
}

void FakeHub::Handle(int fd) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) return;  // bounded: a silent client cannot hang the server
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  std::istringstream in(req.substr(0, req.find("\r\n\r\n")));
  std::string line, method, target;
  std::getline(in, line);
  std::istringstream(line) >> method >> target;
  std::map<std::string, std::string> headers;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t v = colon + 1;
    while (v < line.size() && line[v] == ' ') ++v;
    headers[Lower(line.substr(0, colon))] = line.substr(v);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back({method, target, headers["authorization"], headers["range"]});
  }
  const Reply reply = Route(method, target.substr(0, target.find('?')), headers);
  std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " " + StatusText(reply.status) +
                     "\r\nConnection: close\r\n";
  bool has_length = false;
  for (const auto& [k, v] : reply.headers) {
    head += k + ": " + v + "\r\n";
    has_length = has_length || Lower(k) == "content-length";
  }
  if (!has_length) head += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  head += "\r\n";
  SendAll(fd, head.data(), head.size());
  if (method == "HEAD") return;
  const size_t n = reply.send_only >= 0
                       ? std::min(reply.body.size(), static_cast<size_t>(reply.send_only))
                       : reply.body.size();
  SendAll(fd, reply.body.data(), n);
}

FakeHub::Reply FakeHub::Content(const File& f, const std::string& range, bool head,
                                const std::vector<std::pair<std::string, std::string>>& extra) {
  Reply r;
  r.headers = extra;
  r.headers.push_back({"Accept-Ranges", "bytes"});
  const int64_t size = static_cast<int64_t>(f.data.size());
  int64_t start = 0, end = size - 1;
  if (StartsWith(range, "bytes=")) {
    long long a = 0, b = -1;
    const int got = std::sscanf(range.c_str(), "bytes=%lld-%lld", &a, &b);
    if (got < 1 || a >= size) {
      r.status = 416;
      r.headers.push_back({"Content-Range", "bytes */" + std::to_string(size)});
      return r;
    }
    start = a;
    if (got == 2 && b < end) end = b;
    r.status = 206;
    r.headers.push_back({"Content-Range", "bytes " + std::to_string(start) + "-" +
                                              std::to_string(end) + "/" + std::to_string(size)});
  }
  r.body = f.data.substr(static_cast<size_t>(start), static_cast<size_t>(end - start + 1));
  if (head) {  // HEAD: the length of what a GET would send, no body
    r.headers.push_back({"Content-Length", std::to_string(r.body.size())});
    r.body.clear();
  }
  return r;
}

FakeHub::Reply FakeHub::Route(const std::string& method, const std::string& raw_path,
                              const std::map<std::string, std::string>& headers) {
  const std::string path = PercentDecode(raw_path);
  std::lock_guard<std::mutex> lock(mu_);
  auto error = [](int status, const std::string& code, const std::string& message) {
    Reply r;
    r.status = status;
    if (!code.empty()) r.headers.push_back({"X-Error-Code", code});
    r.headers.push_back({"X-Error-Message", message});
    r.body = "{\"error\":\"" + message + "\"}";
    return r;
  };
  auto find_repo = [&](const std::string& id) -> const Repo* {
    auto it = repos_.find(id);
    return it == repos_.end() ? nullptr : &it->second;
  };
  // Splits "org/name/rest" into id and rest.
  auto split_id = [](const std::string& s, std::string* id, std::string* rest) {
    const size_t a = s.find('/');
    const size_t b = a == std::string::npos ? a : s.find('/', a + 1);
    if (b == std::string::npos) return false;
    *id = s.substr(0, b);
    *rest = s.substr(b + 1);
    return true;
  };
  const auto header = [&](const std::string& k) {
    auto it = headers.find(k);
    return it == headers.end() ? std::string() : it->second;
  };

  std::string id, rest;
  if (StartsWith(path, "/api/models/")) {
    if (!api_enabled_) return error(404, "", "Not Found");
    if (!split_id(path.substr(12), &id, &rest) || !StartsWith(rest, "revision/"))
      return error(404, "", "Not Found");
    if (auto it = renamed_.find(id); it != renamed_.end()) {
      Reply r;
      r.status = 307;
      r.headers.push_back({"Location", "/api/models/" + it->second + "/" + rest});
      return r;
    }
    const Repo* repo = find_repo(id);
    if (repo == nullptr) return error(404, "RepoNotFound", "Repository not found");
    const std::string rev = rest.substr(9);
    if (rev != "main" && rev != repo->commit)
      return error(404, "RevisionNotFound", "Invalid rev id: " + rev);
    nlohmann::json j;
    j["id"] = id;
    j["sha"] = repo->commit;
    j["gated"] = repo->gated ? nlohmann::json("auto") : nlohmann::json(false);
    j["siblings"] = nlohmann::json::array();
    for (const auto& [name, f] : repo->files) j["siblings"].push_back({{"rfilename", name}});
    Reply r;
    r.headers.push_back({"Content-Type", "application/json"});
    r.body = j.dump();
    return r;
  }

  if (StartsWith(path, "/cdn/")) {
    std::string file;
    if (!split_id(path.substr(5), &id, &file)) return error(404, "", "Not Found");
    const Repo* repo = find_repo(id);
    if (repo == nullptr || repo->files.count(file) == 0) return error(404, "", "Not Found");
    if (refuse_cdn_.exchange(false)) return error(403, "", "Request has expired");
    Reply r = Content(repo->files.at(file), header("range"), method == "HEAD", {});
    if (file == cut_file_) {
      r.send_only = cut_after_;
      cut_file_.clear();
    }
    return r;
  }

  if (!split_id(path.substr(1), &id, &rest) || !StartsWith(rest, "resolve/"))
    return error(404, "", "Not Found");
  if (auto it = renamed_.find(id); it != renamed_.end()) {
    Reply r;
    r.status = 307;
    r.headers.push_back({"Location", "/" + it->second + "/" + rest});
    return r;
  }
  const Repo* repo = find_repo(id);
  if (repo == nullptr) return error(404, "RepoNotFound", "Repository not found");
  const std::string auth = header("authorization");
  if (repo->gated && auth != std::string("Bearer ") + kToken) {
    if (!auth.empty()) return error(401, "", "Invalid credentials in Authorization header");
    return error(401, "GatedRepo",
                 "Access to model " + id +
                     " is restricted. You must have access to it and be "
                     "authenticated to access it. Please log in.");
  }
  rest = rest.substr(8);  // {rev}/{file}
  const size_t slash = rest.find('/');
  const std::string rev = rest.substr(0, slash);
  const std::string file = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (rev != "main" && rev != repo->commit)
    return error(404, "RevisionNotFound", "Invalid rev id: " + rev);
  auto fit = repo->files.find(file);
  if (fit == repo->files.end()) {
    Reply r = error(404, "EntryNotFound", "Entry not found");
    r.headers.push_back({"X-Repo-Commit", repo->commit});
    return r;
  }
  const File& f = fit->second;
  if (f.lfs) {
    Reply r;
    r.status = 302;
    r.headers = {
        {"Location", "http://localhost:" + std::to_string(port_) + "/cdn/" + id + "/" + file},
        {"X-Repo-Commit", repo->commit},
        {"X-Linked-Etag", f.etag},
        {"X-Linked-Size", std::to_string(f.data.size())},
        {"ETag", "\"" + HexDigest("pointer:" + f.data.substr(0, 64), 40) + "\""}};
    return r;
  }
  return Content(f, header("range"), method == "HEAD",
                 {{"ETag", f.etag}, {"X-Repo-Commit", repo->commit}});
}

}  // namespace plm::test
