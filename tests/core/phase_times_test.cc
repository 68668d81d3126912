// Phase times: summed only while enabled, per phase, cleared by enabling again.
#include "core/phase_times.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace plm {
namespace {

TEST(PhaseTimes, SumsScopesOnlyWhileEnabled) {
  EnablePhaseTimes(false);
  { PhaseScope s(Phase::kQkv); }
  EnablePhaseTimes(true);  // clears
  for (double v : PhaseSeconds()) EXPECT_EQ(v, 0.0);
  for (int i = 0; i < 2; ++i) {
    PhaseScope s(Phase::kDown);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    PhaseScope s(Phase::kAttention);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EnablePhaseTimes(false);
  {
    PhaseScope s(Phase::kDown);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const auto secs = PhaseSeconds();
  EXPECT_GE(secs[static_cast<size_t>(Phase::kDown)], 0.010);
  // The disabled scope is not in (the bound leaves room for sleeps overshooting on a busy machine).
  EXPECT_LT(secs[static_cast<size_t>(Phase::kDown)], 0.150);
  EXPECT_GE(secs[static_cast<size_t>(Phase::kAttention)], 0.002);
  EXPECT_EQ(secs[static_cast<size_t>(Phase::kQkv)], 0.0);
  EXPECT_EQ(std::string(PhaseName(Phase::kGateUp)), "gate_up");
  EXPECT_EQ(std::string(PhaseName(Phase::kCount)), "?");
}

}  // namespace
}  // namespace plm
