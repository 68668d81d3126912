// Quantized checkpoints written by `plm quantize`: a Hugging Face folder (config.json, tokenizer
// and processor files copied unchanged) whose model.safetensors holds the Linear weights in our
// q8/q4 formats, loaded in place by mmap (no re-quantizing at load).
//
// Layout (format version 2). For a Linear weight `W` of shape [n, k]:
//   q8b: `W` I8 [ceil(n/64), ceil(k/64)*16, 64, 4]: the int8 rows in the blocked layout of
//        core/lowp_gemm.h (per 64 outputs, per 4 inputs, 64 x 4 bytes; zero padding), used in
//        place by the int8 GEMMs (rows are rebuilt at load on CPUs without AVX512-VNNI);
//        `W.qscale` F32 [n], `W.qaux` I32 [n] (row sums);
//   q4b: `W` U8 [ceil(n/64), k/32, 1152]: the blocked q4 layout of core/lowp_gemm.h (per 64
//        outputs and 32 inputs: 64 F16 scales, then the nibbles in vpdpbusd order; zero
//        padding), used in place (rows are rebuilt at load on CPUs without AVX512-VNNI);
//        `W.qaux` F32 [n] (128 * sum_b scale_b * sum(q_b), the offset compensation of the row
//        kernels).
//   bf16b (`plm quantize --dtype bf16`; no quantization: bf16 weights are copied exactly, f16/f32
//        ones rounded to bf16 as at load): `W` BF16 [ceil(n/64), ceil(k/32)*16, 128], the blocked
//        layout of PackBf16 (per 64 outputs, per 2 inputs, 64 x 2 values; zero padding), used in
//        place (rows are rebuilt at load on CPUs without AVX512-BF16). Saves the ~1 s of
//        blocking a 1B model's bf16 weights at every load. A tied LM head is not written (the
//        bf16 path reads the embedding table in place).
// Version 1 (still read) stored q8 as `W` I8 [n, k] rows (format name "q8") and q4 as `W` U8
// [n, k/2] (per 64 values: byte j = (q[j]+8) | (q[j+32]+8) << 4) with `W.qscale` F16 [n, k/32]
// (format name "q4").
// `__metadata__`: "plm.quantization" = "q8"|"q4"|"bf16" (what was asked),
// "plm.quantization_version" = "2", and "plm.q:W" = the format of each quantized tensor. The vision
// tower is stored q8 when q4 is asked (it is compute-bound); a tied LM head is stored as a
// quantized `lm_head.weight` next to the unchanged embedding table. Every other tensor is copied as
// is. Blocked tensors come first (64-byte aligned: their sizes are multiples of 64), then 4-byte
// types, 2-byte, then 1-byte, so every array is aligned for in-place use.
#pragma once

#include <functional>
#include <string>

#include "plm/model.h"

namespace plm {

inline constexpr const char* kQuantMetaFormat = "plm.quantization";
inline constexpr const char* kQuantMetaVersion = "plm.quantization_version";
inline constexpr const char* kQuantVersion = "2";  // written; "1" is read too
inline constexpr const char* kQuantMetaTensorPrefix = "plm.q:";
inline constexpr const char* kQuantScaleSuffix = ".qscale";
inline constexpr const char* kQuantAuxSuffix = ".qaux";

struct QuantizeStats {
  int64_t quantized_tensors = 0, copied_tensors = 0;
  size_t in_bytes = 0, out_bytes = 0;
};

// Writes the quantized checkpoint of the (unquantized) PerceptionLM folder `in_dir` to `out_dir`
// (created if needed; its model.safetensors is replaced). `dtype`: kQ8, kQ4 or kBF16 (blocked
// bf16). The arrays are produced by the same code as converting at load, so both give identical
// outputs. `format_version`: 2, or 1 (q8/q4 as rows; kept so that reading old folders stays
// tested).
QuantizeStats QuantizeCheckpoint(const std::string& in_dir, const std::string& out_dir,
                                 ComputeType dtype,
                                 const std::function<void(const std::string&)>& progress = {},
                                 int format_version = 2);

}  // namespace plm
