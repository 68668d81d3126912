#include "core/phase_times.h"

#include <atomic>
#include <cstdint>

namespace plm {

namespace {
std::atomic<bool> g_enabled{false};
std::array<std::atomic<int64_t>, kPhaseCount> g_nanos{};
}  // namespace

const char* PhaseName(Phase p) {
  static constexpr const char* kNames[kPhaseCount] = {
      "norms", "qkv", "rope_kv", "attention", "o", "gate_up", "silu_mul", "down", "lm_head"};
  const auto i = static_cast<size_t>(p);
  return i < kPhaseCount ? kNames[i] : "?";
}

void EnablePhaseTimes(bool on) {
  if (on)
    for (auto& n : g_nanos) n.store(0, std::memory_order_relaxed);
  g_enabled.store(on, std::memory_order_relaxed);
}

bool PhaseTimesEnabled() {
  return g_enabled.load(std::memory_order_relaxed);
}

std::array<double, kPhaseCount> PhaseSeconds() {
  std::array<double, kPhaseCount> s{};
  for (size_t i = 0; i < kPhaseCount; ++i)
    s[i] = static_cast<double>(g_nanos[i].load(std::memory_order_relaxed)) * 1e-9;
  return s;
}

PhaseScope::PhaseScope(Phase p) : phase_(p), on_(PhaseTimesEnabled()) {
  if (on_) t0_ = std::chrono::steady_clock::now();
}

PhaseScope::~PhaseScope() {
  if (!on_) return;
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_)
          .count();
  g_nanos[static_cast<size_t>(phase_)].fetch_add(ns, std::memory_order_relaxed);
}

}  // namespace plm
