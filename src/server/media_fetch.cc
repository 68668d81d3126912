#include "server/media_fetch.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "io/http_client.h"
#include "server/api_error.h"

namespace plm::server {

namespace {

bool StartsWith(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string MiB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

std::vector<uint8_t> FromDataUrl(const MediaRef& ref, int64_t max_bytes) {
  const size_t comma = ref.url.find(',');
  if (comma == std::string::npos)
    throw BadRequest(ref.param + ": a data: URL needs a ',' before its data", ref.param,
                     "invalid_url");
  const std::string header = Lower(ref.url.substr(5, comma - 5));
  if (header.size() < 7 || header.compare(header.size() - 7, 7, ";base64") != 0)
    throw BadRequest(ref.param + ": only base64 data: URLs are supported", ref.param,
                     "invalid_url");
  const std::string_view data(ref.url.data() + comma + 1, ref.url.size() - comma - 1);
  // Check the size before decoding anything.
  if (static_cast<int64_t>(data.size() / 4 * 3) > max_bytes + 3)
    throw TooLarge(ref.param + ": the " + (ref.video ? "video" : "image") + " is about " +
                       MiB(static_cast<int64_t>(data.size() / 4 * 3)) + "; the limit is " +
                       MiB(max_bytes),
                   ref.param);
  std::vector<uint8_t> bytes = DecodeBase64(data, ref.param);
  if (static_cast<int64_t>(bytes.size()) > max_bytes)
    throw TooLarge(ref.param + ": the " + std::string(ref.video ? "video" : "image") + " is " +
                       MiB(static_cast<int64_t>(bytes.size())) + "; the limit is " + MiB(max_bytes),
                   ref.param);
  if (bytes.empty()) throw BadRequest(ref.param + ": the data: URL is empty", ref.param);
  return bytes;
}

std::vector<uint8_t> FromHttp(const MediaRef& ref, int64_t max_bytes,
                              const ServerOptions& options) {
  if (!options.allow_remote_media)
    throw BadRequest(ref.param + ": this server does not fetch http(s) URLs", ref.param,
                     "remote_media_disabled");
  HttpClient client("plm-serve");
  HttpTimeouts t;
  const int total = std::max(1, static_cast<int>(options.media_timeout_s));
  t.connect_s = std::min(total, 10);
  t.total_s = total;
  t.stall_s = std::min(total, 10);
  std::string url = ref.url;
  std::vector<uint8_t> bytes;
  bool too_large = false;
  for (int redirects = 0;; ++redirects) {
    bytes.clear();
    HttpBodySink sink;
    sink.on_start = [&](const HttpResponse& head) {
      const std::string len = head.Header("content-length");
      if (!len.empty() && std::strtoll(len.c_str(), nullptr, 10) > max_bytes) {
        too_large = true;
        return false;
      }
      return true;
    };
    sink.on_data = [&](const char* d, size_t n) {
      if (static_cast<int64_t>(bytes.size() + n) > max_bytes) {
        too_large = true;
        return false;
      }
      bytes.insert(bytes.end(), d, d + n);
      return true;
    };
    const HttpResponse r = client.Perform("GET", url, {}, t, &sink, 4096);
    if (too_large)
      throw TooLarge(ref.param + ": " + url + " is larger than the limit of " + MiB(max_bytes),
                     ref.param);
    if (r.status >= 300 && r.status < 400 && !r.redirect_url.empty()) {
      if (redirects >= 5)
        throw BadRequest(ref.param + ": too many redirects fetching " + ref.url, ref.param,
                         "media_unavailable");
      url = r.redirect_url;
      if (!StartsWith(Lower(url), "http://") && !StartsWith(Lower(url), "https://"))
        throw BadRequest(ref.param + ": redirect to a non-http URL", ref.param,
                         "media_unavailable");
      continue;
    }
    if (!r.error.empty() || r.status == 0)
      throw BadRequest(
          ref.param + ": cannot fetch " + url + ": " + (r.error.empty() ? "no response" : r.error),
          ref.param, "media_unavailable");
    if (r.status != 200)
      throw BadRequest(
          ref.param + ": fetching " + url + " returned HTTP " + std::to_string(r.status), ref.param,
          "media_unavailable");
    if (bytes.empty())
      throw BadRequest(ref.param + ": " + url + " returned an empty body", ref.param,
                       "media_unavailable");
    return bytes;
  }
}

// A local path inside one of the allowed folders (resolved, so ".." and links cannot escape).
std::string LocalPath(const MediaRef& ref, int64_t max_bytes, const ServerOptions& options) {
  std::string path = ref.url;
  if (StartsWith(path, "file://")) path = path.substr(7);
  if (options.allowed_media_dirs.empty())
    throw BadRequest(ref.param + ": local paths are not allowed (start the server with " +
                         "--allow-media-dir to allow a folder), use a data: or http(s) URL",
                     ref.param, "local_media_disabled");
  char resolved[PATH_MAX];
  if (path.empty() || path[0] != '/' || ::realpath(path.c_str(), resolved) == nullptr)
    throw BadRequest(ref.param + ": " + path + " does not exist (absolute paths only)", ref.param,
                     "not_found");
  const std::string real = resolved;
  bool inside = false;
  for (const auto& dir : options.allowed_media_dirs) {
    char rd[PATH_MAX];
    if (::realpath(dir.c_str(), rd) == nullptr) continue;
    std::string d = rd;
    if (d != "/" && !d.empty()) d += "/";
    if (real.rfind(d, 0) == 0) inside = true;
  }
  if (!inside)
    throw BadRequest(ref.param + ": " + path + " is outside the folders this server allows",
                     ref.param, "local_media_forbidden");
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0)
    throw BadRequest(ref.param + ": " + path + " cannot be read", ref.param, "not_found");
  if (S_ISREG(st.st_mode) && st.st_size > max_bytes)
    throw TooLarge(
        ref.param + ": " + path + " is " + MiB(st.st_size) + "; the limit is " + MiB(max_bytes),
        ref.param);
  if (!ref.video && !S_ISREG(st.st_mode))
    throw BadRequest(ref.param + ": " + path + " is not a file", ref.param);
  return real;
}

}  // namespace

std::vector<uint8_t> DecodeBase64(std::string_view text, const std::string& param) {
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=') {
      padding = true;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    } else {
      throw BadRequest(param + ": invalid base64 data", param, "invalid_base64");
    }
    if (padding) throw BadRequest(param + ": invalid base64 data", param, "invalid_base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

void FetchMedia(ParsedChatRequest* req, const ServerOptions& options) {
  for (const MediaRef& ref : req->media) {
    const int64_t max_bytes =
        ref.video ? options.limits.max_video_bytes : options.limits.max_image_bytes;
    ContentPart& part = req->chat.conversation.at(ref.message).content.at(ref.part);
    const std::string lower = Lower(ref.url.substr(0, 8));
    if (StartsWith(lower, "data:")) {
      part.bytes = FromDataUrl(ref, max_bytes);
    } else if (StartsWith(lower, "http://") || StartsWith(lower, "https://")) {
      part.bytes = FromHttp(ref, max_bytes, options);
    } else if (StartsWith(lower, "file://") || StartsWith(ref.url, "/")) {
      part.path = LocalPath(ref, max_bytes, options);
    } else {
      throw BadRequest(ref.param + ": unsupported URL (use a data: URL with base64, an " +
                           "http(s):// URL, or an allowed local path)",
                       ref.param, "invalid_url");
    }
  }
}

}  // namespace plm::server
