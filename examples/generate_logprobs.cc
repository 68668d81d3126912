// generate_logprobs — the Hugging Face-style building blocks, using only the public C++ API:
// PerceptionLMProcessor (apply_chat_template + processor call),
// PerceptionLMForConditionalGeneration (forward) and generate() with per-token log-probabilities,
// stop strings and a batch of prompts of different lengths (left padding, as HF).
//
//   generate_logprobs MODEL_DIR [MAX_NEW_TOKENS]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "plm/error.h"
#include "plm/generation.h"
#include "plm/model.h"
#include "plm/processor.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [MAX_NEW_TOKENS]\n", argv[0]);
    return 2;
  }
  try {
    auto processor = plm::PerceptionLMProcessor::FromPretrained(argv[1]);
    auto model = plm::PerceptionLMForConditionalGeneration::FromPretrained(argv[1]);

    // processor.apply_chat_template(...) then processor(text=..., padding_side="left").
    const std::vector<plm::Conversation> batch = {
        {{"user", {plm::ContentPart::Text("Name a colour.")}}},
        {{"system", {plm::ContentPart::Text("You answer briefly.")}},
         {"user", {plm::ContentPart::Text("What is the capital of France?")}}}};
    std::printf("prompt 0: %s\n", processor->ApplyChatTemplate(batch[0]).c_str());
    const plm::ProcessorOutputs inputs = processor->Process(batch, {}, plm::PaddingSide::kLeft);

    // model(**inputs).logits, last position only (logits_to_keep=1).
    plm::ForwardInputs fwd = inputs.AsForwardInputs();
    fwd.logits_to_keep = 1;
    const plm::ForwardOutputs out = model->Forward(fwd);
    std::printf("logits: %s\n", out.logits.ShapeString().c_str());

    // model.generate(**inputs, max_new_tokens=..., stop_strings=[...], tokenizer=...) with the
    // log-probabilities of each new token and its 3 most likely alternatives.
    plm::GenerationConfig gc = plm::GenerationConfig::FromDirectory(argv[1]);
    gc.max_new_tokens = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 8;
    plm::GenerateOptions opts;
    opts.top_logprobs = 3;
    opts.stop_strings = {"\n\n"};
    opts.processor = processor.get();
    const plm::GenerateOutput gen = plm::Generate(*model, inputs.AsForwardInputs(), gc, opts);
    for (size_t row = 0; row < gen.sequences.size(); ++row) {
      const auto& lp = gen.logprobs[row];
      std::printf("row %zu (%s): \"%s\"\n", row, plm::StopReasonName(gen.stop_reasons[row]),
                  processor->Decode({gen.sequences[row].data(), lp.size()}).c_str());
      for (const plm::StepLogprobs& s : lp) {
        std::printf("  token %6lld  logprob %8.4f  top:", static_cast<long long>(s.token),
                    s.logprob);
        for (const plm::TokenLogprob& t : s.top)
          std::printf(" %lld (p=%.3f)", static_cast<long long>(t.token), std::exp(t.logprob));
        std::printf("\n");
      }
    }
    return 0;
  } catch (const plm::Error& e) {
    std::fprintf(stderr, "generate_logprobs: %s\n", e.what());
    return static_cast<int>(e.code());
  }
}
