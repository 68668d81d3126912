#include "io/hub_options.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>

#include "plm/error.h"

namespace plm {

namespace {

// Every variable HubOptionsFromEnv looks at, so the process environment can be copied into a map.
const char* const kEnvNames[] = {
    "HOME",
    "XDG_CACHE_HOME",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
};

std::string Get(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? std::string() : it->second;
}

// huggingface_hub's _is_true: 1/ON/YES/TRUE in any case.
bool IsTrue(std::string v) {
  for (char& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

std::string HomeDir(const std::map<std::string, std::string>& env) {
  std::string home = Get(env, "HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr)
    return pw->pw_dir;
  return "/";
}

// os.path.expanduser for "~" and "~/..." (the forms the variables use in practice).
std::string ExpandUser(const std::string& path, const std::map<std::string, std::string>& env) {
  if (path == "~") return HomeDir(env);
  if (path.rfind("~/", 0) == 0) return HomeDir(env) + path.substr(1);
  return path;
}

// The token as huggingface_hub cleans it: line breaks removed, surrounding blanks stripped.
std::string CleanToken(const std::string& raw) {
  std::string t;
  for (char c : raw)
    if (c != '\r' && c != '\n') t += c;
  size_t b = 0, e = t.size();
  while (b < e && std::isspace(static_cast<unsigned char>(t[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(t[e - 1]))) --e;
  return t.substr(b, e - b);
}

int TimeoutFrom(const std::map<std::string, std::string>& env, const std::string& key, int def) {
  const std::string v = Get(env, key);
  if (v.empty()) return def;
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0' || n <= 0 || n > 24 * 3600)
    throw Error(ErrorCode::kInvalidArgument,
                key + "=" + v + ": expected a whole number of seconds (1 to 86400)");
  return static_cast<int>(n);
}

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool IsValidRepoPart(const std::string& p) {
  if (p.empty() || !IsWordChar(p.front()) || !IsWordChar(p.back())) return false;
  for (char c : p)
    if (!IsWordChar(c) && c != '-' && c != '.') return false;
  return true;
}

}  // namespace

const std::vector<std::string>& DefaultHubFiles() {
  static const std::vector<std::string> files = {
      "config.json",
      "generation_config.json",
      "processor_config.json",
      "preprocessor_config.json",
      "video_preprocessor_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "chat_template.jinja",
      "chat_template.json",
      "model.safetensors",
      "model.safetensors.index.json",
  };
  return files;
}

HubOptions HubOptionsFromEnv(const std::map<std::string, std::string>& env) {
  HubOptions o;
  std::string endpoint = Get(env, "HF_ENDPOINT");
  if (endpoint.empty()) endpoint = "https://huggingface.co";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  o.endpoint = endpoint;

  std::string hf_home = Get(env, "HF_HOME");
  if (hf_home.empty()) {
    std::string xdg = Get(env, "XDG_CACHE_HOME");
    if (xdg.empty()) xdg = HomeDir(env) + "/.cache";
    hf_home = xdg + "/huggingface";
  }
  hf_home = ExpandUser(hf_home, env);

  std::string cache = Get(env, "HF_HUB_CACHE");
  if (cache.empty()) cache = Get(env, "HUGGINGFACE_HUB_CACHE");  // the legacy name
  if (cache.empty()) cache = hf_home + "/hub";
  o.cache_dir = ExpandUser(cache, env);

  if (!IsTrue(Get(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN"))) {
    std::string token = Get(env, "HF_TOKEN");
    if (token.empty()) token = Get(env, "HUGGING_FACE_HUB_TOKEN");
    o.token = CleanToken(token);
    if (o.token.empty()) {
      std::string path = Get(env, "HF_TOKEN_PATH");
      path = path.empty() ? hf_home + "/token" : ExpandUser(path, env);
      std::ifstream in(path, std::ios::binary);
      if (in) {
        const std::string raw((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
        o.token = CleanToken(raw);
      }
    }
  }

  // Python's `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`: the second only when the first is unset.
  std::string offline = Get(env, "HF_HUB_OFFLINE");
  if (offline.empty()) offline = Get(env, "TRANSFORMERS_OFFLINE");
  o.offline = IsTrue(offline);

  o.etag_timeout_s = TimeoutFrom(env, "HF_HUB_ETAG_TIMEOUT", o.etag_timeout_s);
  o.download_timeout_s = TimeoutFrom(env, "HF_HUB_DOWNLOAD_TIMEOUT", o.download_timeout_s);
  return o;
}

HubOptions HubOptionsFromEnvironment() {
  std::map<std::string, std::string> env;
  for (const char* name : kEnvNames)
    if (const char* v = std::getenv(name); v != nullptr) env[name] = v;
  return HubOptionsFromEnv(env);
}

bool IsValidRepoId(const std::string& s) {
  if (s.size() > 96 || s.find("--") != std::string::npos || s.find("..") != std::string::npos)
    return false;
  const size_t slash = s.find('/');
  if (slash == std::string::npos || s.find('/', slash + 1) != std::string::npos) return false;
  return IsValidRepoPart(s.substr(0, slash)) && IsValidRepoPart(s.substr(slash + 1));
}

bool LooksLikeHubId(const std::string& s) {
  struct stat st;
  return IsValidRepoId(s) && ::lstat(s.c_str(), &st) != 0;
}

}  // namespace plm
