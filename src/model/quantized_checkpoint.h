// Quantized checkpoints written by `plm quantize`: a Hugging Face folder (config.json, tokenizer
// and processor files copied unchanged) whose model.safetensors holds the Linear weights in our
// q8/q4 formats, loaded in place by mmap (no re-quantizing at load).
//
// Layout (format version 1). For a Linear weight `W` of shape [n, k]:
//   q8: `W` I8 [n, k] (int8 per output row), `W.qscale` F32 [n], `W.qaux` I32 [n] (row sums);
//   q4: `W` U8 [n, k/2] (per 64 values: byte j = (q[j]+8) | (q[j+32]+8) << 4),
//       `W.qscale` F16 [n, k/32] (one scale per block of 32), `W.qaux` F32 [n]
//       (128 * sum_b scale_b * sum(q_b), the VNNI offset compensation).
// `__metadata__`: "plm.quantization" = "q8"|"q4" (what was asked), "plm.quantization_version" =
// "1", and "plm.q:W" = the format of each quantized tensor. The vision tower is stored q8 when
// q4 is asked (it is compute-bound); a tied LM head is stored as a quantized `lm_head.weight`
// next to the unchanged embedding table. Every other tensor is copied as is. Tensors are laid
// out 4-byte types first, then 2-byte, then 1-byte, so every array is aligned for in-place use.
#pragma once

#include <functional>
#include <string>

#include "plm/model.h"

namespace plm {

inline constexpr const char* kQuantMetaFormat = "plm.quantization";
inline constexpr const char* kQuantMetaVersion = "plm.quantization_version";
inline constexpr const char* kQuantVersion = "1";
inline constexpr const char* kQuantMetaTensorPrefix = "plm.q:";
inline constexpr const char* kQuantScaleSuffix = ".qscale";
inline constexpr const char* kQuantAuxSuffix = ".qaux";

struct QuantizeStats {
  int64_t quantized_tensors = 0, copied_tensors = 0;
  size_t in_bytes = 0, out_bytes = 0;
};

// Writes the quantized checkpoint of the (unquantized) PerceptionLM folder `in_dir` to `out_dir`
// (created if needed; its model.safetensors is replaced). `dtype`: kQ8 or kQ4. The quantized
// arrays are produced by the same code as quantizing at load, so both give identical outputs.
QuantizeStats QuantizeCheckpoint(const std::string& in_dir, const std::string& out_dir,
                                 ComputeType dtype,
                                 const std::function<void(const std::string&)>& progress = {});

}  // namespace plm
