// The kernels a CPU without AVX-512 runs — the AVX2 decode GEMVs and bf16-cache attention
// (core/gemv_avx2.h, core/attention_avx2.h) — give a whole model's prompt and decode steps the
// logits of the portable code and, within the reduced-precision paths' differences, of this
// CPU's own kernels, in every format.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/cpu_features.h"
#include "plm/kv_cache.h"
#include "plm/model.h"
#include "support/test_support.h"

namespace plm {
namespace {

ForwardInputs Tokens(int64_t n, int64_t seed, int64_t vocab) {
  ForwardInputs in;
  for (int64_t i = 0; i < n; ++i)
    in.input_ids.push_back((seed + 37 * i) % std::min<int64_t>(vocab, 1000));
  in.len = n;
  in.logits_to_keep = 1;
  return in;
}

// Last-position logits of a 40-token prompt, then of 1-token decode steps and one 3-token
// chunk, on a model loaded under the current CPU features.
std::vector<Tensor> PromptAndSteps(const std::string& dir, ComputeType ct) {
  LoadOptions opt;
  opt.compute = ct;
  auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir, opt);
  const int64_t vocab = model->config().text.vocab_size;
  KVCache cache = model->NewCache(1, 64);
  std::vector<Tensor> out;
  out.push_back(model->Forward(Tokens(40, 11, vocab), &cache).logits);
  for (int step = 0; step < 6; ++step)
    out.push_back(model->Forward(Tokens(step == 3 ? 3 : 1, 200 + step, vocab), &cache).logits);
  return out;
}

// Max relative logit difference over the steps, and how many steps' argmax differ.
struct StepsDiff {
  double worst = 0;
  int argmax_differs = 0;
};
StepsDiff Diff(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  StepsDiff d;
  EXPECT_EQ(got.size(), want.size());
  for (size_t s = 0; s < std::min(got.size(), want.size()); ++s) {
    const auto& a = got[s].data;
    const auto& b = want[s].data;
    EXPECT_EQ(a.size(), b.size());
    if (a.size() != b.size()) continue;
    d.worst = std::max(d.worst, test::Compare(a.data(), b.data(), b.size()).rel());
    d.argmax_differs += std::max_element(a.begin(), a.end()) - a.begin() !=
                        std::max_element(b.begin(), b.end()) - b.begin();
  }
  return d;
}

// The AVX2 kernels against the portable ones (the same f32 arithmetic in another order; exp to
// 2 ulp in both) and against this CPU's own (on AVX-512: bf16/fp16 products where allowed and a
// faster exp, 4e-5, in attention: the differences of the reduced-precision paths).
TEST(CpuPaths, Avx2KernelsMatchPortableAndNativeInAModel) {
  const CpuFeatures native = Cpu();
  const CpuFeatures avx2 = test::Avx2Only(native);
  if (!avx2.avx2_kernels()) GTEST_SKIP() << "this CPU has no AVX2, FMA and F16C";
  const auto dirs = test::FixtureModels();
  ASSERT_FALSE(dirs.empty());
  for (const std::string& dir : dirs) {
    for (ComputeType ct : {ComputeType::kBF16, ComputeType::kQ8, ComputeType::kQ4}) {
      const std::vector<Tensor> want = PromptAndSteps(dir, ct);
      SetCpuFeaturesForTesting(avx2);
      EXPECT_STREQ(KernelSetName(), "avx2");
      const std::vector<Tensor> got = PromptAndSteps(dir, ct);
      SetCpuFeaturesForTesting(CpuFeatures{});
      const std::vector<Tensor> portable = PromptAndSteps(dir, ct);
      SetCpuFeaturesForTesting(native);
      const StepsDiff vs_portable = Diff(got, portable), vs_native = Diff(got, want);
      const std::string what = dir.substr(dir.rfind('/') + 1) + " " + ComputeTypeName(ct);
      std::printf("[cpu-paths] %s: AVX2 vs portable %.3g (%d argmax), vs native %.3g (%d)\n",
                  what.c_str(), vs_portable.worst, vs_portable.argmax_differs, vs_native.worst,
                  vs_native.argmax_differs);
      EXPECT_LT(vs_portable.worst, 1e-4) << what;
      EXPECT_EQ(vs_portable.argmax_differs, 0) << what;
      EXPECT_LT(vs_native.worst, ct == ComputeType::kBF16 ? 0.01 : 0.06) << what;
    }
  }
}

}  // namespace
}  // namespace plm
