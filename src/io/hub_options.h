// Settings for downloading models from the Hugging Face Hub, read from the same environment
// variables as Python's huggingface_hub so both use one cache, one token and one endpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace plm {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // $HF_ENDPOINT, no trailing '/'
  std::string token;      // $HF_TOKEN, else the token file ($HF_TOKEN_PATH or $HF_HOME/token)
  std::string cache_dir;  // $HF_HUB_CACHE, else $HF_HOME/hub; "" = from the environment
  std::string revision = "main";  // branch, tag or commit hash
  bool offline = false;           // $HF_HUB_OFFLINE: only the cache, never the network
  // Ask the Hub for the revision's current commit even when the cache holds a complete snapshot
  // for it (otherwise a cached branch is used as is, without network).
  bool refresh = false;
  // Bytes of `file` received so far; called at the start, at most ~10 times a second, and at
  // the end of every transfer.
  std::function<void(const std::string& file, int64_t done, int64_t total)> on_progress;
  // Which files to fetch: names or fnmatch patterns (globs only match against the Hub's file
  // list). Empty = DefaultHubFiles(). config.json and the weights are always fetched.
  std::vector<std::string> allow_patterns;
  int etag_timeout_s = 10;      // $HF_HUB_ETAG_TIMEOUT: each metadata request
  int download_timeout_s = 10;  // $HF_HUB_DOWNLOAD_TIMEOUT: connecting, and stalls mid-transfer
  int retries = 5;              // resume attempts after a broken transfer (reset on progress)
  int retry_delay_ms = 1000;
};

// config.json, generation_config.json, processor/preprocessor/video_preprocessor configs,
// tokenizer files, chat templates, model.safetensors and model.safetensors.index.json (whose
// shards are fetched with it).
const std::vector<std::string>& DefaultHubFiles();

// Options from an environment given as a map (HOME, XDG_CACHE_HOME, HF_HOME, HF_HUB_CACHE,
// HUGGINGFACE_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH,
// HF_HUB_DISABLE_IMPLICIT_TOKEN, HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, HF_HUB_ETAG_TIMEOUT,
// HF_HUB_DOWNLOAD_TIMEOUT). Reads the token file when no token variable is set. Throws
// kInvalidArgument for a malformed timeout.
HubOptions HubOptionsFromEnv(const std::map<std::string, std::string>& env);
// The same from this process's environment.
HubOptions HubOptionsFromEnvironment();

// A syntactically valid Hub model id "org/name" (huggingface_hub's rules: letters, digits,
// '_', '-', '.', no "--" or "..", parts start and end with a letter, digit or '_').
bool IsValidRepoId(const std::string& s);
// A valid "org/name" id that is not an existing local path.
bool LooksLikeHubId(const std::string& s);

}  // namespace plm
