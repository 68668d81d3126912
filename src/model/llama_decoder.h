// The Llama-3 decoder of PerceptionLM (plm-spec.md §8), float32 reference path: RMSNorm, GQA
// attention with HF "rotate_half" RoPE (default or llama3 scaling), SwiGLU MLP, KV cache.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "model/f32_weights.h"
#include "model/linear.h"
#include "model/weight_store.h"
#include "plm/config.h"
#include "plm/kv_cache.h"
#include "plm/model.h"
#include "plm/tensor.h"

namespace plm {

struct DecoderRequest {
  const float* embeds = nullptr;       // [batch, len, hidden] input embeddings
  const int64_t* positions = nullptr;  // [batch, len] RoPE positions
  const uint8_t* mask = nullptr;       // [batch, len] 1 = real token, 0 = padding (null: all real)
  int64_t batch = 1, len = 0;
  bool output_hidden_states = false;
  bool output_attentions = false;
  // Rows before this one of a batch-1 request are not needed in DecoderResult::hidden (e.g. only
  // the last position's logits are wanted): a sliced prefill then keeps just the rest.
  int64_t hidden_from = 0;
};

struct DecoderResult {
  Tensor hidden;  // [batch, len - hidden_first, hidden] after the final norm
  // The first row of the request held in `hidden` (> 0 only when DecoderRequest::hidden_from
  // let a sliced prefill drop the earlier rows).
  int64_t hidden_first = 0;
  std::vector<Tensor>
      hidden_states;  // embeds, after each layer, and the last replaced by the final norm
  std::vector<Tensor> attentions;  // per layer [batch, heads, len, cache_len + len]
};

class LlamaDecoder {
 public:
  LlamaDecoder(const TextConfig& cfg, const LoadOptions& options, WeightStore& weights,
               const std::string& prefix, const std::string& lm_head);

  const TextConfig& config() const { return cfg_; }
  ComputeType compute() const { return compute_; }

  // Token embeddings for ids [n] into out [n, hidden]; throws on an id outside the vocabulary.
  void Embed(const int64_t* ids, int64_t n, float* out) const;
  // Runs the layers over new tokens, appending their keys/values to `cache`.
  DecoderResult Forward(const DecoderRequest& req, KVCache* cache) const;
  // Continuous batching: row b of `req` continues its own batch-1 cache `caches[b]` (each at its
  // own length). `req.mask` must be null; attentions are not returned.
  DecoderResult ForwardSequences(const DecoderRequest& req, std::span<KVCache* const> caches) const;
  // logits[rows, vocab] = hidden[rows, hidden] · lm_head^T.
  void Logits(const float* hidden, int64_t rows, float* logits) const;

  KVCache NewCache(int64_t batch, int64_t capacity) const;
  // Bytes of weights streamed by one decode step (all linear layers and the LM head).
  size_t DecodeWeightBytes() const;
  // Weights held, owned and in place (see PerceptionLMForConditionalGeneration::weight_bytes).
  HeldBytes held_bytes() const;
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  struct Layer {
    F32Weights input_norm, post_norm;
    Linear q, k, v, o, gate, up, down;
  };
  // Where row b of a request keeps its keys and values: row `row` of `cache`, after `past`
  // positions already cached.
  struct CacheSlot {
    KVCache* cache = nullptr;
    int64_t row = 0;
    int64_t past = 0;
  };
  DecoderResult Run(const DecoderRequest& req, std::span<const CacheSlot> slots) const;
  // cos / sin of every rotary angle at `pos` ([head_dim / 2] each): once per position and
  // forward pass, shared by the layers and by queries and keys.
  void RopeAngles(int64_t pos, float* cs, float* sn) const;
  // Rotates `heads` vectors of head_dim in x by the angles of one position.
  void ApplyRope(float* x, int64_t heads, const float* cs, const float* sn) const;
  void FusedAttentionLayer(const float* q, std::span<const CacheSlot> slots, int64_t layer,
                           int64_t L, float* attn) const;

  TextConfig cfg_;
  ComputeType compute_ = ComputeType::kF32;
  int64_t prefill_chunk_ = 0;  // LoadOptions::prefill_chunk (0: one pass)
  F32Weights embed_;           // [vocab, hidden] (kF32)
  TensorView embed_view_;      // the checkpoint's table in place (other compute types)
  std::vector<Layer> layers_;
  F32Weights norm_;
  Linear lm_head_;  // separate weight, or empty when tied to embed_
  bool tied_ = true;
  std::vector<float> inv_freq_;
};

// inv_freq of the Llama RoPE (default or llama3-scaled), computed in float32 as the reference does.
std::vector<float> LlamaInvFreq(const TextConfig& cfg);

}  // namespace plm
