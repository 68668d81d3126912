// `plm quantize --model IN --out OUT --dtype q8|q4|bf16`: writes a checkpoint folder whose
// matrices are stored in the layouts the kernels read (quantized for q8/q4; blocked bf16 for
// bf16), so it loads by mmap without converting (format: src/model/quantized_checkpoint.h).
// Loading it selects the stored compute type automatically.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "model/quantized_checkpoint.h"
#include "plm/error.h"
#include "plm/model.h"

namespace plm::cli {

namespace {

struct QuantizeArgs {
  std::string model, out, dtype = "q8";
  bool quiet = false;
};

int Run(const QuantizeArgs& a) {
  const ComputeType ct = ParseComputeType(a.dtype);
  if (ct != ComputeType::kQ8 && ct != ComputeType::kQ4 && ct != ComputeType::kBF16)
    throw Error(ErrorCode::kInvalidArgument,
                "--dtype must be q8, q4 or bf16, got \"" + a.dtype + "\"");
  const auto t0 = std::chrono::steady_clock::now();
  const QuantizeStats s = QuantizeCheckpoint(a.model, a.out, ct, [&](const std::string& step) {
    if (!a.quiet) std::fprintf(stderr, "\r\033[K%s", step.c_str());
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.quiet) std::fprintf(stderr, "\r\033[K");
  std::printf("%s: %lld tensors %s (%s), %lld copied; %.2f GB -> %.2f GB in %.1f s\n",
              a.out.c_str(), static_cast<long long>(s.quantized_tensors),
              ct == ComputeType::kBF16 ? "blocked" : "quantized", a.dtype.c_str(),
              static_cast<long long>(s.copied_tensors), static_cast<double>(s.in_bytes) / 1e9,
              static_cast<double>(s.out_bytes) / 1e9, dt);
  return 0;
}

}  // namespace

Command RegisterQuantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand(
      "quantize",
      "Write a q8/q4 quantized (or blocked bf16) checkpoint folder that loads without converting");
  sub->add_option("--model", a->model, "checkpoint folder to quantize (bf16/f16/f32 weights)")
      ->required();
  sub->add_option("--out", a->out, "output folder (created; config and tokenizer files copied)")
      ->required();
  sub->add_option(
         "--dtype", a->dtype,
         "q8, q4, or bf16 (no quantization: the bf16 weights in the layout the kernels read)")
      ->default_val("q8");
  sub->add_flag("--quiet", a->quiet, "no progress on stderr");
  return [a] { return Run(*a); };
}

}  // namespace plm::cli
