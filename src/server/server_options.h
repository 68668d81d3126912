// Options of `plm serve`: where to listen, limits on requests, and the serving engine's knobs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plm/scheduler.h"

namespace plm::server {

// Limits enforced before any heavy work (decoding, preprocessing, vision): a request over a limit
// gets a 4xx error and the server keeps serving.
struct ServerLimits {
  int64_t max_body_bytes = int64_t{64} << 20;    // HTTP request body (413)
  int64_t max_image_bytes = int64_t{20} << 20;   // one encoded image (413)
  int64_t max_video_bytes = int64_t{256} << 20;  // one encoded video (413)
  int64_t max_pixels = 50'000'000;               // decoded pixels per image or frame (413)
  int max_media = 16;                            // images + videos per request (413)
  int max_tiles = 0;               // largest per-request max_tiles (400); 0: the model's maximum
  double max_video_seconds = 600;  // container duration (413)
  int64_t max_video_frames = 256;  // largest num_frames (400) and frames one video may give (413)
  int64_t max_tokens = 4096;       // largest max_tokens / max_completion_tokens (400)
  int64_t max_context = 0;         // prompt + max_tokens (400); 0: the model's context length
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (Server::Start returns it)
  std::string model_name = "plm";  // what /v1/models lists and requests may name
  ServerLimits limits;
  EngineOptions engine;
  // Defaults for requests that leave them out (from `plm serve` flags).
  int64_t default_max_tokens = 256;
  std::optional<int> default_max_tiles;
  std::optional<int64_t> default_num_frames;
  std::optional<double> default_fps;
  double request_timeout_s = 600;  // per request, from arrival to the last token (0: none)
  double media_timeout_s = 20;     // fetching one http(s) image or video
  bool allow_remote_media = true;  // http(s):// media URLs
  std::vector<std::string> allowed_media_dirs;  // local paths allowed under these folders
  std::string api_key;           // when set, requests need "Authorization: Bearer KEY"
  int http_threads = 0;          // 0: max_batch + max_queue + 8
  int preprocess_threads = 1;    // per request (image resize, video frames)
  double shutdown_grace_s = 30;  // SIGTERM: time in-flight requests get to finish
  bool log_requests = false;     // one line per request on stderr
  // Buffers of 4 MiB and more (pixels, KV caches, activations) get their own mappings so the
  // memory of finished requests goes back to the system; glibc's adaptive threshold otherwise
  // keeps them in per-thread arenas and the resident size creeps up with load.
  bool return_memory = true;
};

}  // namespace plm::server
