// PerceptionLMForConditionalGeneration: the whole model (vision tower, projector, Llama decoder)
// loaded from a Hugging Face checkpoint folder, with the reference's forward semantics.
//
//   auto model =
//   plm::PerceptionLMForConditionalGeneration::FromPretrained("path/to/Perception-LM-1B");
//   plm::ForwardInputs in;
//   in.input_ids = {128000, 128006, 882, 128007};  in.batch = 1;  in.len = 4;
//   plm::ForwardOutputs out = model->Forward(in);   // out.logits: [1, 4, vocab]
//
// Thread-safety: a loaded model is immutable; Forward/Generate may run concurrently from several
// threads as long as each call uses its own KVCache.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "plm/config.h"
#include "plm/kv_cache.h"
#include "plm/tensor.h"

namespace plm {

// How weights are stored and multiplied. kF32 is the float32 reference path (the correctness
// oracle); the others trade a documented amount of accuracy for speed and memory.
enum class ComputeType { kF32, kBF16, kQ8, kQ4 };
const char* ComputeTypeName(ComputeType t);
// Parses "f32" / "bf16" / "q8" / "q4"; throws kInvalidArgument otherwise.
ComputeType ParseComputeType(const std::string& s);
// The compute type that runs a checkpoint in the dtype its config names, as transformers'
// default dtype="auto" loads it: bf16 for "bfloat16", float32 otherwise ("float16" too: there
// is no f16 path, and float32 loses nothing). A `plm quantize` folder runs in its own format
// whatever is requested.
ComputeType StoredComputeType(const PerceptionLMConfig& config);

struct LoadOptions {
  ComputeType compute = ComputeType::kF32;
  int threads = 0;  // <= 0: all cores
  // Batch-1 prompts longer than this run through the decoder in slices of this many tokens on
  // the reduced-precision paths (the same logits: each row attends causally to the cache), so
  // prefill activations are bounded by the slice, not the prompt (a 37-tile image is 9.5k
  // tokens). <= 0: the whole prompt in one pass. The f32 reference path always takes one pass.
  int64_t prefill_chunk = 1024;
  // Checkpoints written by `plm quantize` (q8/q4, or blocked bf16; used in place): copy the
  // language model's matrices into memory backed by transparent huge pages (decode streams all of
  // them every token; fewer TLB misses: ~8 % faster decode measured) instead of reading them from
  // the file mapping. Costs one copy at load. false: all in place (instant load, pages shared with
  // the OS file cache). Other checkpoints are converted at load either way; the KV cache always
  // uses huge pages.
  bool huge_pages = true;
  // Called with a short description of each loading step.
  std::function<void(const std::string& step)> on_progress;
};

// Pixel inputs: [tiles, 3, H, W] float32 for images (all tiles of all images, thumbnail first per
// image, images in prompt order) and the same layout for video frames.
struct PixelInputs {
  const float* data = nullptr;
  int64_t tiles = 0;
  // Side of each square tile in pixels, checked against the vision tower's input size (a
  // processor whose tile_size differs from config.json's vision img_size would otherwise make
  // the tower read past the buffer). 0: not checked, the caller guarantees H x W.
  int64_t size = 0;
};

struct ForwardInputs {
  std::vector<int64_t> input_ids;    // [batch, len]; empty when inputs_embeds is given
  std::vector<float> inputs_embeds;  // [batch, len, hidden] (alternative to input_ids)
  int64_t batch = 1, len = 0;
  std::vector<int64_t> attention_mask;  // [batch, len], 1 = token, 0 = padding; empty = all ones
  std::vector<int64_t>
      position_ids;          // [batch, len]; empty = past + 0..len-1 (like a plain HF forward)
  PixelInputs pixel_values;  // images
  PixelInputs pixel_values_videos;  // videos
  std::vector<int64_t> labels;      // [batch, len], -100 = ignored; non-empty → loss
  bool output_hidden_states = false;
  bool output_attentions = false;
  bool output_vision_hidden_states = false;  // per-block vision outputs
  // Rows of logits to compute: 0 = every position, n > 0 = the last n positions.
  int64_t logits_to_keep = 0;
  // Explicit positions to keep (overrides logits_to_keep when non-empty).
  std::vector<int64_t> logits_positions;
  // Vision progress: tiles (image tiles, then video frames) done out of the total.
  std::function<void(int64_t done, int64_t total)> on_vision_tile;
};

struct VisionOutputs {
  Tensor last_hidden_state;           // [tiles, prefix + patches, D_vision]
  std::vector<Tensor> block_outputs;  // per block [tiles, D_vision, grid_h, grid_w]
  Tensor features;                    // projector output [tiles, tokens_per_tile, hidden]
};

struct ForwardOutputs {
  Tensor logits;                      // [batch, kept positions, vocab]
  std::optional<float> loss;          // mean next-token cross-entropy when labels were given
  std::vector<Tensor> hidden_states;  // [batch, len, hidden] × (layers + 1)
  std::vector<Tensor> attentions;     // [batch, heads, len, total] × layers
  VisionOutputs image;                // filled when pixel_values were given
  VisionOutputs video;                // filled when pixel_values_videos were given
};

// Bytes of weights in copies the model owns and used in place from the checkpoint; see
// PerceptionLMForConditionalGeneration::weight_bytes().
struct HeldBytes {
  size_t owned = 0, in_place = 0;
  size_t total() const { return owned + in_place; }
  HeldBytes& operator+=(const HeldBytes& o) {
    owned += o.owned;
    in_place += o.in_place;
    return *this;
  }
};

class PerceptionLMForConditionalGeneration {
 public:
  // Loads config.json and the weights of a Hugging Face PerceptionLM folder. Throws plm::Error
  // naming the file, tensor or key on any problem (missing/unexpected tensors, shape mismatches).
  static std::unique_ptr<PerceptionLMForConditionalGeneration> FromPretrained(
      const std::string& model_dir, const LoadOptions& options = {});
  ~PerceptionLMForConditionalGeneration();

  const PerceptionLMConfig& config() const;
  // The format the language model runs in: LoadOptions::compute, or the stored format of a
  // folder written by `plm quantize` (which takes precedence).
  ComputeType compute() const;

  // Builds the vision tower's working copies of its matrices (converted, quantized or reordered
  // from what the checkpoint stores) now; otherwise the first GetImageFeatures does, so that
  // text-only use never holds them. Once; safe to call from several threads.
  void PrepareVision() const;

  // Vision tower + projector on pixel tiles. Returns features [tiles, tokens_per_tile, hidden];
  // `vision` (optional) receives the tower outputs. `on_tile(done, total)` reports progress.
  Tensor GetImageFeatures(const PixelInputs& pixels, VisionOutputs* vision = nullptr,
                          bool block_outputs = false,
                          const std::function<void(int64_t, int64_t)>& on_tile = {}) const;

  // Input embeddings with media features scattered into the placeholder positions (row-major over
  // batch then sequence). Throws kInvalidArgument naming both counts when they differ.
  Tensor GetInputEmbeddings(const ForwardInputs& inputs, ForwardOutputs* outputs) const;

  // One forward pass. With a cache, keys/values are appended to it and positions continue from
  // its length; without one a temporary cache is used.
  ForwardOutputs Forward(const ForwardInputs& inputs, KVCache* cache = nullptr) const;

  // One step for several independent sequences (continuous batching): row b of `inputs`
  // (input_ids or inputs_embeds, `len` tokens per row) continues its own batch-1 cache
  // `caches[b]`, each at its own length; position_ids default to caches[b]->length() + l.
  // The linear layers run once over all rows, so N sequences decode for about the cost of one.
  // No pixels, attention_mask, labels or attentions (encode media with Forward first).
  ForwardOutputs ForwardSequences(const ForwardInputs& inputs,
                                  std::span<KVCache* const> caches) const;

  // Bytes of weights the loaded model holds, per side (vision = tower + projector; text =
  // decoder, token embeddings, LM head), in the form it computes with. `owned`: copies the model
  // built (converted, quantized or reordered at load, or on the vision tower's first use),
  // resident whether or not a run uses them. `in_place`: checkpoint data used as stored, from
  // the memory-mapped files (resident once a run reads them) or, for the decoder matrices of a
  // `plm quantize` folder, from the huge pages they are read into at load. `plm bench` relates
  // its peak RSS to what its run keeps resident.
  struct WeightBytes {
    HeldBytes vision, text;
  };
  WeightBytes weight_bytes() const;

  // A cache sized for `capacity` positions (it grows on demand).
  KVCache NewCache(int64_t batch, int64_t capacity) const;

  // Logits of arbitrary hidden rows (after the final norm): [rows, vocab].
  void ComputeLogits(const float* hidden, int64_t rows, float* logits) const;

  struct Impl;

 private:
  explicit PerceptionLMForConditionalGeneration(std::unique_ptr<Impl> impl);
  // Logits of rows `keep` of `hidden`, which holds rows first..len-1 of each batch row.
  Tensor KeptLogits(const ForwardInputs& inputs, const std::vector<int64_t>& keep,
                    const Tensor& hidden, int64_t first) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace plm
