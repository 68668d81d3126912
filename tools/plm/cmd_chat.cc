// `plm chat`: an interactive multi-turn session in the terminal.
//   /image PATH   attach an image to the next message     /video PATH   attach a video
//   /clear        forget the conversation                 /exit         quit (also Ctrl-D)
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "plm/error.h"

namespace plm::cli {

namespace {

struct ChatArgs {
  ModelArgs model;
  SamplingArgs sampling;
  MediaArgs media;
  std::string system;
};

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

int Run(const ChatArgs& a) {
  Progress progress(a.model.quiet, a.model.verbose);
  auto pipe = LoadPipeline(a.model, progress);
  const bool interactive = ::isatty(STDIN_FILENO);
  Conversation history;
  if (!a.system.empty()) history.push_back({"system", {ContentPart::Text(a.system)}});
  std::vector<ContentPart> pending;  // media attached to the next user message
  if (interactive)
    std::fprintf(stderr, "plm chat — /image PATH, /video PATH, /clear, /exit. Ctrl-D quits.\n");
  std::string line;
  for (;;) {
    if (interactive) {
      std::fprintf(stderr, "> ");
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    line = Trim(line);
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/clear") {
      history.clear();
      if (!a.system.empty()) history.push_back({"system", {ContentPart::Text(a.system)}});
      pending.clear();
      progress.Note("(conversation cleared)");
      continue;
    }
    if (line.rfind("/image ", 0) == 0 || line.rfind("/video ", 0) == 0) {
      const bool image = line[1] == 'i';
      const std::string path = Trim(line.substr(7));
      if (::access(path.c_str(), R_OK) != 0) {
        std::fprintf(stderr, "plm: error: %s: cannot read the file\n", path.c_str());
        continue;
      }
      pending.push_back(image ? ContentPart::Image(path) : ContentPart::Video(path));
      progress.Note("(" + path + " attached to your next message)");
      continue;
    }
    if (line[0] == '/') {
      std::fprintf(stderr, "plm: unknown command %s (try /image, /video, /clear, /exit)\n",
                   line.c_str());
      continue;
    }
    Message user{"user", pending};
    user.content.push_back(ContentPart::Text(line));
    history.push_back(user);
    ChatRequest req;
    req.conversation = history;
    req.media = a.media.ToOptions(a.model.threads);
    req.generation = a.sampling.Apply(pipe->default_generation());
    ChatCallbacks cb;
    cb.on_progress = progress.StageCallback();
    cb.on_text = [&](const std::string& piece) {
      progress.Clear();
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    try {
      const ChatResult r = pipe->Chat(req, cb);
      std::printf("\n");
      std::fflush(stdout);
      progress.Summary(r);
      history.push_back({"assistant", {ContentPart::Text(r.text)}});
      pending.clear();
    } catch (const Error& e) {
      // A bad attachment or an over-long conversation should not end the session.
      progress.Clear();
      std::fprintf(stderr, "plm: error: %s\n", e.what());
      history.pop_back();
      pending.clear();
    }
  }
  return 0;
}

}  // namespace

Command RegisterChat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* sub = app.add_subcommand(
      "chat", "Interactive multi-turn chat (/image PATH, /video PATH, /clear, /exit)");
  a->model.Register(sub);
  sub->add_option("--system", a->system, "System prompt");
  a->sampling.Register(sub);
  a->media.Register(sub);
  return [a] { return Run(*a); };
}

}  // namespace plm::cli
