#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace plm {

int64_t ArgMax(std::span<const float> logits) {
  int64_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int64_t>(i);
  return best;
}

void ApplyRepetitionPenalty(std::span<float> logits, std::span<const int64_t> seen, float penalty) {
  if (penalty == 1.0f) return;
  std::unordered_set<int64_t> done;
  for (int64_t id : seen) {
    if (id < 0 || id >= static_cast<int64_t>(logits.size()) || !done.insert(id).second) continue;
    float& x = logits[id];
    x = x < 0 ? x * penalty : x / penalty;
  }
}

Sampler::Sampler(const GenerationConfig& config) : cfg_(config), rng_(config.seed) {}

int64_t Sampler::Next(std::span<float> logits, std::span<const int64_t> seen) {
  ApplyRepetitionPenalty(logits, seen, cfg_.repetition_penalty);
  if (!cfg_.do_sample) return ArgMax(logits);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const auto V = static_cast<int64_t>(logits.size());
  if (cfg_.temperature > 0 && cfg_.temperature != 1.0f)
    for (float& x : logits) x /= cfg_.temperature;
  if (cfg_.temperature <= 0) return ArgMax(logits);  // temperature 0 means greedy
  // Candidates sorted by logit, descending (stable: lower id first among equals).
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  int64_t keep = V;
  if (cfg_.top_k > 0) keep = std::min(keep, cfg_.top_k);
  const float mx = logits[order[0]];
  std::vector<double> probs(static_cast<size_t>(keep));
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i)
    sum += probs[i] = std::exp(static_cast<double>(logits[order[i]]) - mx);
  for (auto& p : probs) p /= sum;
  if (cfg_.top_p < 1.0f) {
    // Keep the smallest prefix whose mass reaches top_p (at least one token).
    double cum = 0;
    int64_t n = 0;
    while (n < keep) {
      cum += probs[n++];
      if (cum >= cfg_.top_p) break;
    }
    keep = std::max<int64_t>(n, 1);
  }
  if (cfg_.min_p > 0) {
    const double thresh = cfg_.min_p * probs[0];
    int64_t n = 0;
    while (n < keep && probs[n] >= thresh) ++n;
    keep = std::max<int64_t>(n, 1);
  }
  for (int64_t i = keep; i < V; ++i) logits[order[i]] = neg_inf;
  std::discrete_distribution<int64_t> dist(probs.begin(), probs.begin() + keep);
  return order[dist(rng_)];
}

}  // namespace plm
