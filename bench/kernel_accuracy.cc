// Accuracy of the CPU-specific attention kernels at a real shape: image features and prompt
// logits of a checkpoint (e.g. `plm bench`'s random-weight PLM-1B folder) in bf16 and q8, with
// each many-query attention kernel this CPU can run (fp16 FMAs where it has AVX512-FP16, f32
// FMAs), against the float32 reference path. A plain program, not a Google Benchmark one.
//
//   build/bench/kernel_accuracy /tmp/plm-bench-plm-1b-shaped [prompt_tokens=1200]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "core/cpu_features.h"
#include "plm/error.h"
#include "plm/model.h"

namespace {

double RelL2(const plm::Tensor& a, const plm::Tensor& ref) {
  double e = 0, n = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = static_cast<double>(a.data[i]) - ref.data[i];
    e += d * d;
    n += static_cast<double>(ref.data[i]) * ref.data[i];
  }
  return std::sqrt(e / n);
}

// Rows of logits [.., vocab]: relative L2, max |difference| / max |logit|, mean KL(ref || x),
// top-1 agreement.
void CompareLogits(const char* name, const plm::Tensor& x, const plm::Tensor& ref) {
  const int64_t vocab = ref.dim(-1), rows = ref.numel() / vocab;
  double kl = 0, max_rel = 0;
  int64_t agree = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = ref.ptr() + r * vocab;
    const float* q = x.ptr() + r * vocab;
    const int64_t ap = std::max_element(p, p + vocab) - p, aq = std::max_element(q, q + vocab) - q;
    double sp = 0, sq = 0, max_abs = 0, max_diff = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      sp += std::exp(static_cast<double>(p[v]) - p[ap]);
      sq += std::exp(static_cast<double>(q[v]) - q[aq]);
      max_abs = std::max(max_abs, static_cast<double>(std::fabs(p[v])));
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(p[v] - q[v])));
    }
    for (int64_t v = 0; v < vocab; ++v) {
      const double lp = p[v] - p[ap] - std::log(sp), lq = q[v] - q[aq] - std::log(sq);
      kl += std::exp(lp) * (lp - lq);
    }
    max_rel = std::max(max_rel, max_diff / max_abs);
    agree += ap == aq;
  }
  std::printf(
      "%-24s logits: rel L2 %.3e, max |d|/max |logit| %.3e, mean KL %.3e, top-1 %lld/%lld\n", name,
      RelL2(x, ref), max_rel, kl / static_cast<double>(rows), static_cast<long long>(agree),
      static_cast<long long>(rows));
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [prompt_tokens]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int64_t len = argc > 2 ? std::atoll(argv[2]) : 1200;
  plm::LoadOptions options;
  options.compute = plm::ComputeType::kF32;
  auto f32 = plm::PerceptionLMForConditionalGeneration::FromPretrained(dir, options);
  // One tile of a smooth pattern with noise, and random prompt tokens.
  const int64_t h = f32->config().vision.img_height, w = f32->config().vision.img_width;
  std::vector<float> pixels(static_cast<size_t>(3 * h * w));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> noise(-0.2f, 0.2f);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        pixels[static_cast<size_t>((c * h + y) * w + x)] =
            std::sin(0.05f * static_cast<float>(x) + 0.5f * static_cast<float>(c)) *
                std::cos(0.03f * static_cast<float>(y)) +
            noise(rng);
  plm::PixelInputs tile;
  tile.data = pixels.data();
  tile.tiles = 1;
  plm::ForwardInputs prompt;
  prompt.len = len;
  std::uniform_int_distribution<int64_t> token(1000, f32->config().text.vocab_size - 1);
  for (int64_t i = 0; i < len; ++i) prompt.input_ids.push_back(token(rng));
  prompt.logits_to_keep = 64;
  const plm::Tensor features_ref = f32->GetImageFeatures(tile);
  const plm::Tensor logits_ref = f32->Forward(prompt).logits;
  f32.reset();

  const plm::CpuFeatures cpu = plm::Cpu();
  for (const char* dtype : {"bf16", "q8"}) {
    options.compute = plm::ParseComputeType(dtype);
    auto model = plm::PerceptionLMForConditionalGeneration::FromPretrained(dir, options);
    for (bool fp16 : {true, false}) {
      if (fp16 && !cpu.avx512fp16) continue;
      plm::CpuFeatures f = cpu;
      f.avx512fp16 = fp16;
      plm::SetCpuFeaturesForTesting(f);
      char name[64];
      std::snprintf(name, sizeof name, "%s, %s attention", dtype,
                    fp16 ? "fp16" : (cpu.intel ? "f32" : "bf16"));
      std::printf("%-24s features: rel L2 %.3e\n", name,
                  RelL2(model->GetImageFeatures(tile), features_ref));
      CompareLogits(name, model->Forward(prompt).logits, logits_ref);
    }
    plm::SetCpuFeaturesForTesting(cpu);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "kernel_accuracy: %s\n", e.what());
  return 1;
}
