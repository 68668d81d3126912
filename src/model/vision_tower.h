// The Perception Encoder vision tower (timm Eva with 2D RoPE), float32 reference path.
// See plm-spec.md §5: patch conv, class token, absolute position embedding, pre-norm,
// pre-norm blocks with 2D interleaved RoPE and LayerScale, optional final norm; tiles are
// independent.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/f32_weights.h"
#include "model/linear.h"
#include "model/weight_store.h"
#include "plm/config.h"
#include "plm/model.h"
#include "plm/tensor.h"

namespace plm {

class VisionTower {
 public:
  VisionTower(const VisionConfig& cfg, const LoadOptions& options, WeightStore& weights,
              const std::string& prefix);

  // pixels: [n_tiles, 3, H, W] float32, normalised. Returns last_hidden_state
  // [n_tiles, prefix + patches, D]. When `block_outputs` is non-null it receives each block's
  // output [n_tiles, D, grid_h, grid_w] (prefix tokens dropped, channels first) — what the
  // reference's per-block hidden states hold. `on_tile` is called after each tile.
  Tensor Forward(const float* pixels, int64_t n_tiles, std::vector<Tensor>* block_outputs = nullptr,
                 const std::function<void(int64_t done, int64_t total)>& on_tile = {}) const;

  // Builds the block matrices (converted, quantized, packed) now rather than on the first
  // Forward; once, thread-safe.
  void Prepare() const;

  const VisionConfig& config() const { return cfg_; }
  // Weights held, owned and in place. Before the first Forward the block matrices count as their
  // checkpoint bytes in place; it builds their converted / packed copies (not to be called while
  // one runs).
  HeldBytes held_bytes() const;
  int64_t tokens_per_tile() const { return cfg_.num_prefix_tokens() + cfg_.num_patches(); }

 private:
  struct Block {
    F32Weights norm1_w, norm1_b, norm2_w, norm2_b, gamma_1, gamma_2;
    Linear qkv, proj, fc1, fc2;
    // Where qkv, proj, fc1, fc2 are stored until they are built (weight null once built).
    std::array<LinearSource, 4> sources;
    std::array<Linear*, 4> linears() { return {&qkv, &proj, &fc1, &fc2}; }
    std::array<const Linear*, 4> linears() const { return {&qkv, &proj, &fc1, &fc2}; }
  };

  // Activations of one tile, allocated once per Forward and reused (uninitialised: every
  // element is written before it is read).
  struct Scratch {
    std::unique_ptr<float[]> cols, a, qkv, attn, m;
  };
  void ForwardTile(const float* pixels, float* out, std::vector<Tensor>* block_outputs,
                   int64_t tile, int64_t n_tiles, Scratch& s) const;
  void Attention(const float* qkv, float* out) const;
  void FusedAttentionTile(const float* qkv, float* out) const;
  void ApplyRope(float* x) const;  // x: [patches, head_dim], rotated in place
  // dst = src rotated for patch `patch` (head_dim values; dst may be src).
  void RopeRow(const float* src, int64_t patch, float* dst) const;

  VisionConfig cfg_;
  ComputeType compute_ = ComputeType::kF32;
  F32Weights patch_w_, patch_b_, cls_, pos_, norm_pre_w_, norm_pre_b_, norm_w_, norm_b_;
  std::vector<Block> blocks_;
  // [patches, head_dim]: one angle per adjacent pair, in RotatePairs' layout (core/rotate_pairs.h)
  std::vector<float> rope_cos2_, rope_sin2_;
  // The block matrices are built (converted, quantized) and packed on the first Forward, so
  // loading stays a mapping and text-only use never pays for them.
  mutable std::once_flag prepared_;
};

}  // namespace plm
