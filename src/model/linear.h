// A PyTorch-style Linear layer y = x W^T + b over rows of activations.
//
// The weight format follows LoadOptions::compute:
//   kF32  float32 reference (in place from the mapping when stored as f32, converted otherwise);
//   kBF16 bf16 (in place from the mapping when stored as bf16), bf16 GEMMs with f32 accumulation;
//   kQ8   int8 per output channel, int8 activations per row (VNNI / oneDNN s8 GEMMs);
//   kQ4   4-bit blocks of 32 with an f16 scale each (VNNI in-register unpacking for decode).
// Quantized formats are built at load time from whatever the checkpoint stores, or used in place
// from a quantized checkpoint written by `plm quantize` (see model/quantized_checkpoint.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/lowp_gemm.h"
#include "io/safetensors.h"
#include "model/f32_weights.h"
#include "model/weight_store.h"
#include "plm/model.h"

namespace plm {

class Linear {
 public:
  Linear() = default;
  // weight: [out, in]; bias: [out] or null.
  Linear(const TensorView& weight, const TensorView* bias, ComputeType compute = ComputeType::kF32);
  // A matrix stored quantized (or bf16 blocked) in the checkpoint, used in place (no copy).
  Linear(const QuantizedWeight& weight, const TensorView* bias);

  // y[rows, out] = x[rows, in] W^T + b, or with `ep` GeluFast of that, or y += gamma * that (see
  // GemmEpilogue; fused into the int8 GEMMs' rescaling pass for large `rows`).
  void Forward(const float* x, int64_t rows, float* y, const GemmEpilogue& ep = {}) const;
  // Forward of the rows `make` writes (rows x in_features floats; e.g. a LayerNorm's output):
  // int8 GEMMs on packed weights make them a few at a time in each thread and quantize them
  // while they are in cache (GemmQ8Made); elsewhere they are made into `scratch` (rows x
  // in_features floats) on the OpenMP team first. The same result as making them, then Forward.
  void ForwardMade(const RowMaker& make, int64_t rows, float* y, float* scratch,
                   const GemmEpilogue& ep = {}) const;
  // Several layers over the same input (q/k/v, gate/up): for decode-sized `rows` one parallel
  // pass over all their weight rows with the input converted once; otherwise one GEMM each.
  static void ForwardMany(const float* x, int64_t rows, const std::vector<const Linear*>& layers,
                          const std::vector<float*>& ys);

  // bf16 / q8 / q4: reorders the weights into their blocked layout (PackBf16 / PackQ8: oneDNN's
  // GEMMs read it faster and decode streams it front to back; PackQ4: a decode stream with the
  // scales in place) and drops the plain rows, releasing their checkpoint pages when mapped.
  // Returns false (unchanged) where unavailable (f32, no AVX-512 BF16/VNNI).
  bool Pack();

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  ComputeType compute() const { return compute_; }
  // Float32 weights (kF32 only; null otherwise).
  const float* weight() const { return compute_ == ComputeType::kF32 ? w_.data() : nullptr; }
  const uint16_t* bf16() const { return bf16_; }
  const Q8Matrix* q8() const { return q8_.get(); }
  const Q4Matrix* q4() const { return q4_.get(); }
  // Bytes of weight data read by one Forward (what a decode step streams from memory).
  size_t weight_bytes() const;
  // Weight and bias bytes held: owned (converted, quantized or packed copies) and in place.
  HeldBytes held_bytes() const;

 private:
  int64_t in_ = 0, out_ = 0;
  ComputeType compute_ = ComputeType::kF32;
  F32Weights w_, b_;
  const uint16_t* bf16_ = nullptr;  // kBF16: in the mapping or in bf16_owned_ (null once packed)
  std::vector<uint16_t> bf16_owned_;
  std::shared_ptr<const PackedBf16> bf16_packed_;  // kBF16 after Pack()
  std::shared_ptr<Q8Matrix> q8_;
  std::shared_ptr<Q4Matrix> q4_;
};

// A Linear's tensors found (and their shapes checked) in the checkpoint, built later: a model
// checks every tensor at load but converts a matrix only when it is first needed.
struct LinearSource {
  const TensorView* weight = nullptr;  // [out, in] as stored (null when stored quantized)
  std::optional<QuantizedWeight> quantized;
  const TensorView* bias = nullptr;  // [out] or null
  ComputeType compute = ComputeType::kF32;

  // The Linear (converting or quantizing the stored weight to `compute`, or in place).
  Linear Build() const;
};

// Finds `weight_name` [out, in] (and `bias_name` [out] unless empty): throws plm::Error naming a
// missing or mis-shaped tensor. Marks them used.
LinearSource FindLinear(WeightStore& ws, const std::string& weight_name, int64_t out, int64_t in,
                        const std::string& bias_name, ComputeType compute);

// FindLinear(...).Build(): in place when the checkpoint stores it quantized, else converted to
// `compute`.
Linear LoadLinear(WeightStore& ws, const std::string& weight_name, int64_t out, int64_t in,
                  const std::string& bias_name, ComputeType compute);

}  // namespace plm
