// `plm run`: one question about images / a video, answer streamed to stdout.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "core/json.h"
#include "model_resolver.h"
#include "plm/pipeline.h"

namespace plm::cli {

namespace {

struct RunArgs {
  ModelArgs model;
  SamplingArgs sampling;
  MediaArgs media;
  std::vector<std::string> images;
  std::string video;
  std::string prompt;
  std::string system;
  bool json = false;
};

int Run(const RunArgs& a) {
  Progress progress(a.model.quiet, a.model.verbose);
  auto pipe = LoadPipeline(a.model, progress);
  if (!a.images.empty() || !a.video.empty()) {
    // Converting / quantizing the tower's matrices takes seconds on big models: say so instead of
    // stalling inside the first tile's progress.
    progress.Status("preparing the vision tower", true);
    pipe->model().PrepareVision();
  }
  ChatRequest req;
  if (!a.system.empty()) req.conversation.push_back({"system", {ContentPart::Text(a.system)}});
  Message user{"user", {}};
  for (const auto& img : a.images) user.content.push_back(ContentPart::Image(img));
  if (!a.video.empty()) user.content.push_back(ContentPart::Video(a.video));
  user.content.push_back(ContentPart::Text(a.prompt));
  req.conversation.push_back(std::move(user));
  req.media = a.media.ToOptions(a.model.threads);
  req.generation = a.sampling.Apply(pipe->default_generation());

  ChatCallbacks cb;
  cb.on_progress = progress.StageCallback();
  if (!a.json) {
    cb.on_text = [&](const std::string& piece) {
      progress.Clear();
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  const ChatResult r = pipe->Chat(req, cb);
  progress.Clear();
  if (a.json) {
    std::printf("%s\n", ResultJson(r).dump(2).c_str());
  } else {
    std::printf("\n");
    progress.Summary(r);
  }
  return 0;
}

}  // namespace

Command RegisterRun(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub =
      app.add_subcommand("run", "Answer one prompt about images or a video (streams the answer)");
  a->model.Register(sub);
  sub->add_option("--image,-i", a->images,
                  "Image file (repeat for several; JPEG, PNG, WebP, GIF, BMP)");
  sub->add_option("--video,-v", a->video,
                  "Video file (mp4, webm, mkv, mov, avi, gif), frame folder or .npy");
  sub->add_option("--prompt,-p", a->prompt, "The question or instruction")->required();
  sub->add_option("--system", a->system,
                  "System prompt (default: the model's chat template default)");
  a->sampling.Register(sub);
  a->media.Register(sub);
  sub->add_flag("--json", a->json,
                "Print one JSON object: text, token counts, stop reason, timings");
  return [a] { return Run(*a); };
}

}  // namespace plm::cli
