// Opt-in wall time per phase of a decoder forward pass, summed over calls: `plm bench` reports
// where a decode step's time goes (which projections stream below the bandwidth, what the
// norms, attention and barriers between them cost). Off by default; when off a scope costs one
// relaxed atomic load.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>

namespace plm {

enum class Phase : size_t {
  kNorms,      // RMSNorm before attention and before the MLP
  kQkv,        // q/k/v projections
  kRopeKv,     // RoPE, then keys and values into the cache
  kAttention,  // attention over the cache
  kO,          // output projection (+ residual)
  kGateUp,     // gate and up projections
  kSiluMul,    // SiLU(gate) * up
  kDown,       // down projection (+ residual)
  kLmHead,     // LM head (logits; the final norm counts under kNorms)
  kCount
};
inline constexpr size_t kPhaseCount = static_cast<size_t>(Phase::kCount);

const char* PhaseName(Phase p);

// Starts (clearing the sums) or stops summing. Not for concurrent forward passes: the sums would
// mix them.
void EnablePhaseTimes(bool on);
bool PhaseTimesEnabled();
// Seconds per phase since EnablePhaseTimes(true).
std::array<double, kPhaseCount> PhaseSeconds();

// Adds its lifetime to phase `p` when enabled.
class PhaseScope {
 public:
  explicit PhaseScope(Phase p);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase phase_;
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace plm
