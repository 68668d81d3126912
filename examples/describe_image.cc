// describe_image — ask a PerceptionLM model about an image, using only the public C++ API
// (include/plm). The answer streams to stdout as it is generated.
//
//   describe_image MODEL_DIR IMAGE [PROMPT] [MAX_NEW_TOKENS]
//
// MODEL_DIR is a Hugging Face checkpoint folder (e.g. a download of facebook/Perception-LM-1B).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "plm/error.h"
#include "plm/pipeline.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE [PROMPT] [MAX_NEW_TOKENS]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 3 ? argv[3] : "Describe this image.";
  const long max_new = argc > 4 ? std::strtol(argv[4], nullptr, 10) : 64;
  try {
    // Processor (chat template, tokenizer, image/video processors) + model + generation config.
    auto pipe = plm::Pipeline::FromPretrained(argv[1]);

    plm::ChatRequest req;
    req.conversation = {
        {"user", {plm::ContentPart::Image(argv[2]), plm::ContentPart::Text(prompt)}}};
    req.generation = pipe->default_generation();  // greedy, stop ids from the checkpoint
    req.generation.max_new_tokens = max_new;

    plm::ChatCallbacks cb;
    cb.on_text = [](const std::string& piece) {
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
      return true;  // false would stop generating
    };
    const plm::ChatResult r = pipe->Chat(req, cb);
    std::printf("\n[%lld prompt tokens (%lld image tiles), %lld generated, stop: %s]\n",
                static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.image_tiles),
                static_cast<long long>(r.completion_tokens), plm::StopReasonName(r.stop_reason));
    return 0;
  } catch (const plm::Error& e) {
    std::fprintf(stderr, "describe_image: %s\n", e.what());
    return static_cast<int>(e.code());
  }
}
