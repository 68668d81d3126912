// Log-probabilities of generated tokens (GenerateOptions::top_logprobs, OpenAI `logprobs`).
#include <algorithm>
#include <cmath>
#include <limits>

#include "plm/error.h"
#include "plm/generation.h"

namespace plm {

StepLogprobs ComputeLogprobs(std::span<const float> logits, int64_t token, int top_n) {
  const auto V = static_cast<int64_t>(logits.size());
  if (token < 0 || token >= V)
    throw Error(ErrorCode::kInvalidArgument, "token " + std::to_string(token) +
                                                 " is outside the logits row of " +
                                                 std::to_string(V) + " entries");
  // log_softmax(x)_i = x_i - (max + log(sum(exp(x - max)))).
  float mx = -std::numeric_limits<float>::infinity();
  for (float x : logits) mx = std::max(mx, x);  // NaN compares false: ignored here
  double sum = 0;
  for (float x : logits)
    if (!std::isnan(x)) sum += std::exp(static_cast<double>(x) - mx);  // NaN: probability 0
  const double lse = static_cast<double>(mx) + std::log(sum);
  auto logprob = [&](int64_t i) { return static_cast<float>(logits[i] - lse); };

  StepLogprobs out;
  out.token = token;
  out.logprob = logprob(token);
  const int64_t n = std::min<int64_t>(std::max(top_n, 0), V);
  if (n == 0) return out;
  // The n best ids; "better" = larger logit, then lower id (a strict weak order, so the result
  // does not depend on the scan order).
  // NaN ranks below everything so the order stays strict and weak.
  auto key = [&](int64_t i) {
    return std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
  };
  auto better = [&](int64_t a, int64_t b) {
    const float ka = key(a), kb = key(b);
    return ka > kb || (ka == kb && a < b);
  };
  std::vector<int64_t> best;
  best.reserve(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i < V; ++i) {
    if (static_cast<int64_t>(best.size()) == n && !better(i, best.front())) continue;
    best.push_back(i);
    std::push_heap(best.begin(), best.end(), better);  // front = the worst kept
    if (static_cast<int64_t>(best.size()) > n) {
      std::pop_heap(best.begin(), best.end(), better);
      best.pop_back();
    }
  }
  std::sort(best.begin(), best.end(), better);
  out.top.reserve(best.size());
  for (int64_t i : best) out.top.push_back({i, logprob(i)});
  return out;
}

}  // namespace plm
