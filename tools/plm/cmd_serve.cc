// `plm serve`: an OpenAI-compatible HTTP server (chat completions with images and videos,
// streaming, concurrent requests batched by plm::Engine). See docs/SERVER.md.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "plm/error.h"
#include "server/http_server.h"

namespace plm::cli {

namespace {

struct ServeArgs {
  ModelArgs model;
  SamplingArgs sampling;
  MediaArgs media;
  server::ServerOptions opt;
  double prefix_cache_mb = 512;
  double max_body_mb = 64, max_image_mb = 20, max_video_mb = 256;
};

// SIGTERM / SIGINT write the signal number to a pipe; a thread reads it and shuts down. (Library
// threads started before us, e.g. OpenBLAS's, may receive the signal, so it is a handler rather
// than sigwait.)
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &b, 1);
}

int Serve(ServeArgs& a) {
  if (::pipe(g_signal_pipe) != 0) throw Error(ErrorCode::kIo, "cannot create a pipe");
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  server::ServerOptions& o = a.opt;
  if (o.model_name.empty()) o.model_name = a.model.model;
  o.engine.prefix_cache_bytes = static_cast<int64_t>(a.prefix_cache_mb * (1 << 20));
  o.limits.max_body_bytes = static_cast<int64_t>(a.max_body_mb * (1 << 20));
  o.limits.max_image_bytes = static_cast<int64_t>(a.max_image_mb * (1 << 20));
  o.limits.max_video_bytes = static_cast<int64_t>(a.max_video_mb * (1 << 20));
  if (a.media.max_tiles) o.limits.max_tiles = *a.media.max_tiles;
  o.default_max_tiles = a.media.max_tiles;
  o.default_num_frames = a.media.frames;
  o.default_fps = a.media.fps;
  const bool quiet = a.model.quiet;

  server::Server srv(o);
  const int port = srv.Start();
  if (!quiet) {
    std::fprintf(stderr, "plm serve: listening on http://%s:%d (loading %s)\n", o.host.c_str(),
                 port, a.model.model.c_str());
    std::fflush(stderr);
  }
  // The first signal starts a graceful shutdown; a second one ends the process at once.
  std::thread signals([&srv, quiet] {
    for (int count = 0;; ++count) {
      unsigned char sig = 0;
      const ssize_t n = ::read(g_signal_pipe[0], &sig, 1);
      if (n < 0 && errno == EINTR) {
        --count;
        continue;
      }
      if (n <= 0) return;
      if (count > 0) {
        std::fprintf(stderr, "plm serve: second signal, exiting without waiting\n");
        std::_Exit(1);
      }
      if (!quiet)
        std::fprintf(stderr, "plm serve: %s, finishing in-flight requests\n",
                     sig == SIGINT ? "interrupted" : "terminated");
      std::thread([&srv] { srv.Shutdown(); }).detach();
    }
  });
  signals.detach();

  Progress progress(true, false);
  std::shared_ptr<const Pipeline> pipe = LoadPipeline(a.model, progress);
  // A server answers about images: build the vision tower's matrices before it reports ready,
  // so that the first image request does not stall the streams running beside it.
  pipe->model().PrepareVision();
  GenerationConfig defaults = a.sampling.Apply(pipe->default_generation());
  o.default_max_tokens = defaults.max_new_tokens;
  srv.SetPipeline(pipe, defaults);
  if (!quiet) {
    std::fprintf(stderr, "plm serve: ready (model '%s', %s, up to %d requests at once)\n",
                 o.model_name.c_str(), ComputeTypeName(pipe->model().compute()),
                 o.engine.max_batch);
    std::fflush(stderr);
  }
  srv.Wait();
  if (!quiet) std::fprintf(stderr, "plm serve: stopped\n");
  return 0;
}

}  // namespace

Command RegisterServe(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  server::ServerOptions& o = a->opt;
  o.model_name.clear();
  CLI::App* sub = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server: chat completions with images and videos");
  a->model.Register(sub);
  sub->add_option("--host", o.host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", o.port, "Port (0: any free port, printed on stderr)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--served-model-name", o.model_name,
                  "Model id for /v1/models and the requests' \"model\" (default: --model)");
  sub->add_option("--api-key", o.api_key, "Require \"Authorization: Bearer KEY\" on chat requests");
  a->sampling.Register(sub);
  a->media.Register(sub);

  auto* eng = "Engine";
  sub->add_option("--max-batch", o.engine.max_batch,
                  "Requests in flight at once; their decode steps are batched")
      ->capture_default_str()
      ->check(CLI::Range(1, 256))
      ->group(eng);
  sub->add_option("--max-queue", o.engine.max_queue,
                  "Requests waiting beyond --max-batch; more get HTTP 429")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000))
      ->group(eng);
  sub->add_option("--prefill-chunk", o.engine.prefill_chunk,
                  "Prompt tokens per prefill slice between decode steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20))
      ->group(eng);
  sub->add_option("--vision-tiles-per-step", o.engine.vision_tiles_per_slice,
                  "Image tiles / video frames encoded per slice between decode steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096))
      ->group(eng);
  sub->add_option("--prefix-cache-mb", a->prefix_cache_mb,
                  "KV cache kept for reuse by requests with the same prefix (0: off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(eng);
  sub->add_option("--timeout", o.request_timeout_s,
                  "Seconds a request may take from arrival to its last token (0: none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(eng);
  sub->add_option("--shutdown-grace", o.shutdown_grace_s,
                  "Seconds in-flight requests get to finish after SIGTERM")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(eng);
  sub->add_option("--http-threads", o.http_threads,
                  "HTTP worker threads (default: max-batch + max-queue + 8)")
      ->check(CLI::Range(1, 4096))
      ->group(eng);

  auto* lim = "Limits (a request over a limit gets HTTP 400/413 before any heavy work)";
  sub->add_option("--max-body-mb", a->max_body_mb, "Request body size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-image-mb", a->max_image_mb, "One encoded image")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-video-mb", a->max_video_mb, "One encoded video")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-image-pixels", o.limits.max_pixels, "Decoded pixels per image or frame")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-media", o.limits.max_media, "Images + videos per request")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096))
      ->group(lim);
  sub->add_option("--max-video-seconds", o.limits.max_video_seconds, "Video duration")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-video-frames", o.limits.max_video_frames,
                  "Frames per video (num_frames and frames sampled)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-tokens-limit", o.limits.max_tokens,
                  "Largest max_tokens a request may ask for")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(lim);
  sub->add_option("--max-context", o.limits.max_context,
                  "Prompt + max_tokens per request (default: the model's context)")
      ->check(CLI::PositiveNumber)
      ->group(lim);

  auto* med = "Media sources";
  sub->add_option("--allow-media-dir", o.allowed_media_dirs,
                  "Allow local image/video paths (and file:// URLs) under this folder (repeat)")
      ->check(CLI::ExistingDirectory)
      ->group(med);
  sub->add_flag(
         "--no-remote-media", [&o](int64_t) { o.allow_remote_media = false; },
         "Refuse http(s):// image and video URLs")
      ->group(med);
  sub->add_option("--media-timeout", o.media_timeout_s,
                  "Seconds to fetch one http(s) image or video")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(med);
  sub->add_flag("--log-requests", o.log_requests, "One line per HTTP request on stderr");
  return [a] { return Serve(*a); };
}

}  // namespace plm::cli
