#include "io/hub_download.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "core/json.h"
#include "io/hf_cache.h"
#include "io/http_client.h"
#include "plm/error.h"

namespace plm {

namespace {

constexpr const char* kUserAgent = "plm.cpp/0.1";
constexpr const char* kConfig = "config.json";
constexpr const char* kWeights = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
constexpr int kMaxRedirects = 10;
constexpr size_t kMaxListingBytes = size_t{64} << 20;

bool IsGlob(const std::string& p) {
  return p.find_first_of("*?[") != std::string::npos;
}

bool IsWeightFile(const std::string& f) {
  return f == kWeights || f == kIndex;
}

// A single path component that is safe as a folder name (commit hashes, ETags).
bool IsSafeName(const std::string& s) {
  return IsSafeRelativePath(s) && s.find('/') == std::string::npos && s.size() <= 255;
}

// Server-provided text made fit for a one-line error message.
std::string OneLine(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  return out;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) ? static_cast<int64_t>(st.st_size)
                                                               : -1;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string Megabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

// Shard files named by the weight_map of a model.safetensors.index.json, in first-seen order.
std::vector<std::string> IndexShards(const std::string& index_path) {
  const Json j = ReadJsonFile(index_path);
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object())
    throw Error(ErrorCode::kCorrupt, index_path + ": missing \"weight_map\" object");
  std::vector<std::string> shards;
  std::set<std::string> seen;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string() || !IsSafeName(it.value().get<std::string>()))
      throw Error(ErrorCode::kCorrupt,
                  index_path + ": weight_map entry \"" + it.key() + "\" is not a shard file name");
    const std::string shard = it.value().get<std::string>();
    if (seen.insert(shard).second) shards.push_back(shard);
  }
  if (shards.empty()) throw Error(ErrorCode::kCorrupt, index_path + ": empty \"weight_map\"");
  return shards;
}

// Where and what a file is, from the HEAD on its resolve URL.
struct FileMeta {
  std::string commit;
  std::string etag;      // normalized: the blob's file name
  int64_t size = 0;      // of the real content (X-Linked-Size for files on the CDN)
  std::string location;  // where to GET it: the CDN URL of a redirect, else the resolve URL
};

// Outcome of one GET attempt that did not throw.
struct Attempt {
  bool done = false;
  bool progressed = false;      // new bytes arrived, so the retry budget starts over
  bool stale_location = false;  // the CDN refused its (signed, expiring) URL: ask the Hub again
  std::string error;
};

class Downloader {
 public:
  Downloader(const std::string& repo_id, const HubOptions& options)
      : repo_(repo_id),
        o_(options),
        cache_(
            options.cache_dir.empty() ? HubOptionsFromEnvironment().cache_dir : options.cache_dir,
            repo_id),
        endpoint_origin_(UrlOrigin(options.endpoint)) {
    patterns_ = o_.allow_patterns.empty() ? DefaultHubFiles() : o_.allow_patterns;
  }

  std::string Run() {
    Validate();
    const std::string& rev = o_.revision;
    const std::string cached = IsCommitHash(rev) ? rev : cache_.ReadRef(rev);
    std::vector<std::string> missing;
    if (!cached.empty()) {
      missing = MissingFromSnapshot(cached);
      if (missing.empty() && (!o_.refresh || o_.offline)) return cache_.SnapshotDir(cached);
    }
    if (o_.offline) {
      if (cached.empty())
        throw Error(ErrorCode::kNotFound,
                    repo_ + " (revision " + rev + ") is not in the Hugging Face cache " +
                        cache_.cache_dir() + ", and HF_HUB_OFFLINE=1 forbids downloading it");
      throw Error(ErrorCode::kNotFound, repo_ + " (revision " + rev + "): the cached snapshot " +
                                            cache_.SnapshotDir(cached) + " lacks " + Join(missing) +
                                            ", and HF_HUB_OFFLINE=1 forbids downloading");
    }
    if (endpoint_origin_.empty())
      throw Error(ErrorCode::kInvalidArgument,
                  "HF_ENDPOINT: '" + o_.endpoint + "' is not an http(s) URL");

    http_ = std::make_unique<HttpClient>(kUserAgent);
    std::string unreachable;
    if (!ListFiles(&unreachable)) {
      if (!unreachable.empty()) {
        // Like huggingface_hub: a complete cached copy beats a network failure.
        if (!cached.empty() && missing.empty()) return cache_.SnapshotDir(cached);
        throw Error(ErrorCode::kIo, "cannot reach " + o_.endpoint + " to download " + repo_ + " (" +
                                        unreachable + "), and the cache " + cache_.cache_dir() +
                                        " has no complete copy");
      }
      ResolveCommitWithoutListing();
    }
    cache_.WriteRef(rev, commit_);

    Ensure(kConfig, true);
    std::set<std::string> done = {kConfig};
    for (const auto& p : patterns_) {
      if (IsGlob(p) || IsWeightFile(p) || !done.insert(p).second) continue;
      Ensure(p, false);
    }
    if (have_listing_) {
      for (const auto& f : listing_) {
        if (IsWeightFile(f) || done.count(f) != 0 || !MatchesGlob(f)) continue;
        done.insert(f);
        Ensure(f, false);
      }
    }
    // Weights last, so a snapshot that has them was filled in completely (see
    // MissingFromSnapshot). The loader prefers the index when both exist, so an index already
    // in the snapshot (from Python, say) gets its shards too.
    if (!cache_.HasFile(commit_, kIndex) && !Ensure(kWeights, false) && !Ensure(kIndex, false))
      throw Error(ErrorCode::kNotFound,
                  repo_ + ": no " + kWeights + " or " + kIndex + " at revision " + rev);
    if (cache_.HasFile(commit_, kIndex))
      for (const auto& shard : IndexShards(cache_.PointerPath(commit_, kIndex)))
        Ensure(shard, true);
    return cache_.SnapshotDir(commit_);
  }

 private:
  void Validate() const {
    if (!IsValidRepoId(repo_))
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + repo_ + "' is not a Hugging Face model id (expected org/name)");
    if (!IsSafeRelativePath(o_.revision))
      throw Error(ErrorCode::kInvalidArgument, repo_ + ": invalid revision '" + o_.revision + "'");
    for (const auto& p : patterns_)
      if (p.empty() || (!IsGlob(p) && !IsSafeRelativePath(p)))
        throw Error(ErrorCode::kInvalidArgument, repo_ + ": invalid file name '" + p + "'");
  }

  bool MatchesGlob(const std::string& file) const {
    for (const auto& p : patterns_)
      if (IsGlob(p) && ::fnmatch(p.c_str(), file.c_str(), 0) == 0) return true;
    return false;
  }

  // Needed files the cached snapshot lacks; empty when it can be used as is. Optional files
  // count as present when a .no_exist marker records that the repo has none.
  std::vector<std::string> MissingFromSnapshot(const std::string& commit) const {
    std::vector<std::string> missing;
    if (!cache_.HasFile(commit, kConfig)) missing.push_back(kConfig);
    for (const auto& p : patterns_) {
      if (IsGlob(p) || IsWeightFile(p) || p == kConfig) continue;
      if (!cache_.HasFile(commit, p) && !cache_.IsKnownMissing(commit, p)) missing.push_back(p);
    }
    if (cache_.HasFile(commit, kIndex)) {
      for (const auto& shard : IndexShards(cache_.PointerPath(commit, kIndex)))
        if (!cache_.HasFile(commit, shard)) missing.push_back(shard);
    } else if (!cache_.HasFile(commit, kWeights)) {
      missing.push_back(kWeights);
    }
    return missing;
  }

  // --- HTTP -------------------------------------------------------------------------------

  // The bearer token goes only to the Hub itself, never to a CDN or other host.
  std::vector<std::string> AuthHeaders(const std::string& url) const {
    if (o_.token.empty() || UrlOrigin(url) != endpoint_origin_) return {};
    return {"Authorization: Bearer " + o_.token};
  }

  HttpTimeouts MetadataTimeouts() const {
    return {o_.etag_timeout_s, o_.etag_timeout_s, o_.etag_timeout_s};
  }

  // A request to the Hub that follows only relative redirects (a renamed repo), as
  // huggingface_hub does, so an absolute redirect to the CDN comes back with its headers.
  HttpResponse HubRequest(const std::string& method, std::string* url, size_t max_body) {
    for (int hop = 0;; ++hop) {
      std::vector<std::string> headers = AuthHeaders(*url);
      headers.push_back("Accept-Encoding: identity");  // the real size, not a compressed one
      HttpResponse r = http_->Perform(method, *url, headers, MetadataTimeouts(), nullptr, max_body);
      const std::string location = r.Header("location");
      const bool relative =
          location.rfind("//", 0) != 0 && location.find("://") == std::string::npos;
      if (r.error.empty() && r.status >= 300 && r.status < 400 && !location.empty() && relative &&
          !r.redirect_url.empty() && hop < kMaxRedirects) {
        *url = r.redirect_url;
        continue;
      }
      return r;
    }
  }

  std::string ResolveUrl(const std::string& revision, const std::string& file) const {
    return o_.endpoint + "/" + repo_ + "/resolve/" + PercentEncode(revision, "") + "/" +
           PercentEncode(file, "/");
  }

  [[noreturn]] void ThrowHttp(const HttpResponse& r, const std::string& file) const {
    const std::string code = r.Header("x-error-code");
    const std::string server_msg = OneLine(r.Header("x-error-message"));
    const std::string st =
        "HTTP " + std::to_string(r.status) + (server_msg.empty() ? "" : ": " + server_msg);
    const bool has_token = !o_.token.empty();
    const std::string page = o_.endpoint + "/" + repo_;
    if (code == "RevisionNotFound")
      throw Error(ErrorCode::kNotFound, repo_ + ": no revision '" + o_.revision + "' (" + st + ")");
    if (code == "EntryNotFound" || (r.status == 404 && code.empty() && !file.empty()))
      throw NoSuchFile(file, st);
    if (code == "GatedRepo") {
      if (has_token)
        throw Error(ErrorCode::kInvalidArgument,
                    repo_ +
                        " is a gated model and the access token in use (HF_TOKEN) has not "
                        "been granted access: accept its conditions at " +
                        page + " (" + st + ")");
      throw Error(ErrorCode::kInvalidArgument,
                  repo_ + " is a gated model: accept its conditions at " + page +
                      " and set HF_TOKEN to an access token of that account (" + st + ")");
    }
    if (r.status == 401 && has_token && code != "RepoNotFound")
      throw Error(ErrorCode::kInvalidArgument, "the Hub at " + o_.endpoint +
                                                   " rejected the access token (" + st +
                                                   "); check HF_TOKEN or the token file");
    if (code == "RepoNotFound" || r.status == 401 || r.status == 404) {
      if (has_token)
        throw Error(ErrorCode::kNotFound, "no model repo " + repo_ + " on " + o_.endpoint +
                                              ", or the access token in use cannot read it (" + st +
                                              ")");
      throw Error(ErrorCode::kNotFound,
                  "no model repo " + repo_ + " on " + o_.endpoint + " (" + st +
                      "); if it is private or gated, set HF_TOKEN to an access token that can "
                      "read it");
    }
    if (r.status == 403)
      throw Error(
          ErrorCode::kInvalidArgument,
          repo_ + ": access denied (" + st + "); set HF_TOKEN to an access token that can read it");
    if (r.status == 429)
      throw Error(ErrorCode::kIo,
                  o_.endpoint + " is rate-limiting requests (" + st + "); try again later");
    throw Error(ErrorCode::kIo,
                repo_ + (file.empty() ? "" : ": " + file) + ": " + o_.endpoint + " answered " + st);
  }

  Error NoSuchFile(const std::string& file, const std::string& why) const {
    return Error(ErrorCode::kNotFound, repo_ + ": no file '" + file + "' at revision '" +
                                           o_.revision + "'" +
                                           (why.empty() ? "" : " (" + why + ")"));
  }

  Error Unreachable(const std::string& url, const std::string& why) const {
    return Error(ErrorCode::kIo, repo_ + ": cannot reach " + url + " (" + why + ")");
  }

  // The Hub's file list and commit for the revision. False when it is not available: either
  // *unreachable is set (network failure) or the endpoint has no such API (a plain mirror).
  bool ListFiles(std::string* unreachable) {
    std::string url =
        o_.endpoint + "/api/models/" + repo_ + "/revision/" + PercentEncode(o_.revision, "");
    const HttpResponse r = HubRequest("GET", &url, kMaxListingBytes);
    if (r.status == 0) {
      *unreachable = r.error;
      return false;
    }
    if (r.status == 200 && r.error.empty()) {
      const Json j = ParseJson(r.body, url);
      const std::string sha = JsonString(j, "sha", url);
      if (!IsSafeName(sha))
        throw Error(ErrorCode::kCorrupt, url + ": invalid commit \"" + OneLine(sha) + "\"");
      commit_ = sha;
      auto siblings = j.find("siblings");
      if (siblings != j.end() && siblings->is_array())
        for (const auto& s : *siblings)
          if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string() &&
              IsSafeRelativePath(s["rfilename"].get<std::string>()))
            listing_.insert(s["rfilename"].get<std::string>());
      have_listing_ = true;
      return true;
    }
    const bool api_missing =
        r.Header("x-error-code").empty() && (r.status == 404 || r.status == 405 || r.status == 501);
    if (api_missing) return false;
    if (!r.error.empty()) throw Unreachable(url, r.error);
    ThrowHttp(r, "");
  }

  // HEAD on the file's resolve URL; nullopt when the repo has no such file at that revision.
  std::optional<FileMeta> Head(const std::string& file, const std::string& revision) {
    std::string url = ResolveUrl(revision, file);
    const HttpResponse r = HubRequest("HEAD", &url, 64 << 10);
    if (!r.error.empty()) throw Unreachable(url, r.error);
    if (r.status == 404 &&
        (r.Header("x-error-code") == "EntryNotFound" || r.Header("x-error-code").empty()))
      return std::nullopt;
    if (r.status < 200 || r.status >= 400) ThrowHttp(r, file);
    const bool redirect = r.status >= 300;
    FileMeta m;
    m.commit = r.Header("x-repo-commit");
    if (m.commit.empty())
      throw Error(ErrorCode::kIo, url + ": no X-Repo-Commit header; " + o_.endpoint +
                                      " does not look like a Hugging Face Hub (check HF_ENDPOINT)");
    if (!IsSafeName(m.commit))
      throw Error(ErrorCode::kCorrupt,
                  url + ": invalid X-Repo-Commit \"" + OneLine(m.commit) + "\"");
    std::string etag = r.Header("x-linked-etag");
    if (etag.empty()) etag = r.Header("etag");
    m.etag = NormalizeEtag(etag);
    if (m.etag.empty())
      throw Error(ErrorCode::kIo, url + ": no ETag header, so the file cannot be cached safely");
    if (!IsSafeName(m.etag))
      throw Error(ErrorCode::kCorrupt, url + ": invalid ETag \"" + OneLine(etag) + "\"");
    std::string size = r.Header("x-linked-size");
    if (size.empty() && !redirect) size = r.Header("content-length");
    char* end = nullptr;
    const long long n = size.empty() ? -1 : std::strtoll(size.c_str(), &end, 10);
    if (n < 0 || (end != nullptr && *end != '\0'))
      throw Error(ErrorCode::kIo, url + ": no valid file size (X-Linked-Size / Content-Length)");
    m.size = n;
    m.location = redirect ? r.redirect_url : url;
    if (m.location.empty()) throw Error(ErrorCode::kIo, url + ": redirect without a Location");
    return m;
  }

  // Without the file list: the commit comes from the HEAD of config.json at the revision.
  void ResolveCommitWithoutListing() {
    std::optional<FileMeta> m = Head(kConfig, o_.revision);
    if (!m) throw NoSuchFile(kConfig, "not a transformers model repo");
    commit_ = m->commit;
    known_meta_[kConfig] = *m;
  }

  // --- Files --------------------------------------------------------------------------------

  // Makes snapshots/{commit}/{file} present. Returns false when the repo has no such file (an
  // error when `required`).
  bool Ensure(const std::string& file, bool required) {
    if (cache_.HasFile(commit_, file)) return true;
    if (have_listing_ && listing_.count(file) == 0) {
      if (required) throw NoSuchFile(file, "");
      cache_.MarkMissing(commit_, file);
      return false;
    }
    if (!have_listing_ && !required && cache_.IsKnownMissing(commit_, file)) return false;
    std::optional<FileMeta> meta;
    if (auto it = known_meta_.find(file); it != known_meta_.end())
      meta = it->second;
    else
      meta = Head(file, commit_);
    if (!meta) {
      if (required) throw NoSuchFile(file, "HTTP 404");
      cache_.MarkMissing(commit_, file);
      return false;
    }
    Materialize(file, *meta);
    return true;
  }

  // Puts the blob in place (reusing one already cached under the same ETag) and links it.
  void Materialize(const std::string& file, const FileMeta& m) {
    const std::string blob = cache_.BlobPath(m.etag);
    if (FileSize(blob) != m.size) {
      HfCacheRepo::BlobLock lock(cache_.LockPath(m.etag));
      const int64_t have = FileSize(blob);  // another process may have finished it meanwhile
      if (have != m.size) {
        if (have >= 0) std::remove(blob.c_str());  // a blob of the wrong size is not trusted
        Download(file, m, blob);
      }
    }
    cache_.Link(commit_, file, m.etag);
  }

  void CheckDiskSpace(const std::string& dir, int64_t needed, const std::string& file) const {
    struct statvfs vfs;
    if (::statvfs(dir.c_str(), &vfs) != 0) return;
    const int64_t free_bytes = static_cast<int64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes < needed)
      throw Error(ErrorCode::kIo, repo_ + ": not enough disk space in " + dir + " for " + file +
                                      ": need " + Megabytes(needed) + ", " + Megabytes(free_bytes) +
                                      " free");
  }

  void Progress(const std::string& file, int64_t done, int64_t total, bool force) {
    if (!o_.on_progress) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_progress_ < std::chrono::milliseconds(100)) return;
    last_progress_ = now;
    o_.on_progress(file, done, total);
  }

  // Fills blob + ".incomplete" (resuming what an earlier run left) and renames it to `blob`.
  void Download(const std::string& file, const FileMeta& m, const std::string& blob) {
    const std::string partial = blob + ".incomplete";
    std::error_code ec;
    std::filesystem::create_directories(cache_.dir() + "/blobs", ec);
    if (ec)
      throw Error(ErrorCode::kIo, cache_.dir() + "/blobs: cannot create folder: " + ec.message());
    CheckDiskSpace(cache_.dir() + "/blobs", m.size - std::max<int64_t>(0, FileSize(partial)), file);
    int retries_left = o_.retries;
    FileMeta current = m;
    bool refreshed = false;
    for (;;) {
      const Attempt a = TryGet(file, current, partial);
      if (a.done) break;
      if (a.stale_location) {
        if (refreshed)
          throw Error(ErrorCode::kIo,
                      repo_ + ": " + file + ": the download server refused it (" + a.error + ")");
        refreshed = true;
        const std::optional<FileMeta> fresh = Head(file, commit_);
        if (!fresh || fresh->etag != m.etag || fresh->size != m.size)
          throw Error(ErrorCode::kCorrupt,
                      repo_ + ": " + file + " changed on the Hub while it was downloaded");
        current = *fresh;
        continue;
      }
      if (a.progressed) retries_left = o_.retries;
      if (retries_left-- <= 0) {
        const int64_t have = std::max<int64_t>(0, FileSize(partial));
        throw Error(ErrorCode::kIo, repo_ + ": download of " + file + " interrupted at " +
                                        std::to_string(have) + " of " + std::to_string(m.size) +
                                        " bytes (" + a.error + "); run again to resume");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(o_.retry_delay_ms));
    }
    if (FileSize(partial) != m.size) {  // TryGet guarantees this; never publish a short blob
      std::remove(partial.c_str());
      throw Error(ErrorCode::kCorrupt, repo_ + ": " + file + ": size mismatch after download");
    }
    if (std::rename(partial.c_str(), blob.c_str()) != 0)
      throw Error(ErrorCode::kIo,
                  blob + ": cannot rename the finished download: " + std::strerror(errno));
  }

  // One GET of the content into `partial`, following every redirect (the CDN), resuming at the
  // partial file's size. Throws for answers that retrying cannot fix.
  Attempt TryGet(const std::string& file, const FileMeta& m, const std::string& partial) {
    int64_t have = FileSize(partial);
    if (have > m.size) {  // not a prefix of this blob: start over
      std::remove(partial.c_str());
      have = -1;
    }
    if (have == m.size) return {true, false, false, ""};  // finished earlier, not yet renamed
    std::string url = m.location;
    for (int hop = 0;; ++hop) {
      if (hop > kMaxRedirects)
        throw Error(ErrorCode::kIo, repo_ + ": " + file + ": too many redirects from " + url);
      std::vector<std::string> headers = AuthHeaders(url);
      headers.push_back("Accept-Encoding: identity");  // the stored bytes must be the file's
      if (have > 0) headers.push_back("Range: bytes=" + std::to_string(have) + "-");

      int fd = -1;
      int64_t offset = 0, written = 0;
      std::string write_error, bad_reply;
      HttpBodySink sink;
      sink.on_start = [&](const HttpResponse& head) {
        if (head.status == 206) {
          // "bytes START-END/TOTAL": the server must resume exactly where the file ends.
          long long start = -1, last = -1, total = -1;
          const std::string cr = head.Header("content-range");
          if (std::sscanf(cr.c_str(), "bytes %lld-%lld/%lld", &start, &last, &total) != 3 ||
              start != have || total != m.size) {
            bad_reply = "unexpected Content-Range '" + OneLine(cr) + "' for a resume at " +
                        std::to_string(have);
            return false;
          }
          offset = have;
        } else if (head.status != 200) {
          bad_reply = "HTTP " + std::to_string(head.status) + " instead of the file contents";
          return false;
        }  // 200 for a Range request: the server sends everything, so start from zero
        fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || ::ftruncate(fd, offset) != 0 || ::lseek(fd, offset, SEEK_SET) != offset) {
          write_error = std::strerror(errno);
          return false;
        }
        Progress(file, offset, m.size, true);
        return true;
      };
      sink.on_data = [&](const char* data, size_t size) {
        if (offset + written + static_cast<int64_t>(size) > m.size) {
          bad_reply = "more than the expected " + std::to_string(m.size) + " bytes";
          return false;
        }
        for (size_t pos = 0; pos < size;) {
          const ssize_t n = ::write(fd, data + pos, size - pos);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            write_error = std::strerror(errno);
            return false;
          }
          pos += static_cast<size_t>(n);
        }
        written += static_cast<int64_t>(size);
        Progress(file, offset + written, m.size, offset + written == m.size);
        return true;
      };
      const HttpTimeouts timeouts{o_.download_timeout_s, 0, o_.download_timeout_s};
      const HttpResponse r = http_->Perform("GET", url, headers, timeouts, &sink, 64 << 10);
      const bool complete = r.error.empty() && fd >= 0 && offset + written == m.size;
      // Flushed to disk before the rename publishes it: a crash must not leave a short blob.
      const bool synced = !complete || ::fdatasync(fd) == 0;
      const int sync_errno = errno;
      if (fd >= 0) ::close(fd);

      if (!write_error.empty())
        throw Error(ErrorCode::kIo, partial + ": cannot write: " + write_error);
      if (!synced)
        throw Error(ErrorCode::kIo, partial + ": cannot write: " + std::strerror(sync_errno));
      if (!bad_reply.empty()) {
        std::remove(partial.c_str());
        throw Error(ErrorCode::kCorrupt, repo_ + ": " + file + ": the server sent " + bad_reply +
                                             " (" + url + "); the partial download was discarded");
      }
      if (complete) return {true, true, false, ""};
      if (r.status >= 300 && r.status < 400 && r.error.empty()) {
        if (r.redirect_url.empty())
          throw Error(ErrorCode::kIo, repo_ + ": " + file + ": redirect without a Location");
        url = r.redirect_url;
        continue;
      }
      if (r.status == 416) {  // the range starts at or past the end: restart cleanly
        std::remove(partial.c_str());
        return {false, false, false, "HTTP 416 for a resume at " + std::to_string(have)};
      }
      if (r.status == 0 || (r.status >= 200 && r.status < 300))
        return {false, written > 0, false,
                r.error.empty()
                    ? "connection closed after " + std::to_string(offset + written) + " bytes"
                    : r.error};
      if (r.status == 429 || r.status >= 500)
        return {false, false, false, "HTTP " + std::to_string(r.status)};
      if (UrlOrigin(url) != endpoint_origin_)  // a CDN answers 403 once its signed URL expired
        return {false, false, true, "HTTP " + std::to_string(r.status) + " from " + UrlOrigin(url)};
      ThrowHttp(r, file);
    }
  }

  const std::string repo_;
  const HubOptions o_;
  HfCacheRepo cache_;
  const std::string endpoint_origin_;
  std::vector<std::string> patterns_;
  std::unique_ptr<HttpClient> http_;
  std::string commit_;
  bool have_listing_ = false;
  std::set<std::string> listing_;
  std::map<std::string, FileMeta> known_meta_;
  std::chrono::steady_clock::time_point last_progress_{};
};

}  // namespace

std::string DownloadModel(const std::string& repo_id, const HubOptions& options) {
  return Downloader(repo_id, options).Run();
}

}  // namespace plm
