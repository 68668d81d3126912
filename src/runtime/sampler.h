// Next-token selection from logits: greedy argmax (lowest index wins ties, like torch.argmax) or
// sampling after HF's logits processors (repetition penalty, temperature, top-k, top-p, min-p).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "plm/generation.h"

namespace plm {

int64_t ArgMax(std::span<const float> logits);

// Applies the repetition penalty in place for the ids in `seen`.
void ApplyRepetitionPenalty(std::span<float> logits, std::span<const int64_t> seen, float penalty);

class Sampler {
 public:
  explicit Sampler(const GenerationConfig& config);
  // Processes `logits` in place (warpers) and picks a token; `seen` = prompt + generated ids.
  int64_t Next(std::span<float> logits, std::span<const int64_t> seen);

 private:
  GenerationConfig cfg_;
  std::mt19937_64 rng_;
};

}  // namespace plm
