// PerceptionLMModel: the model without its language-model head (HF `PerceptionLMModel`, the
// `.model` of PerceptionLMForConditionalGeneration): vision tower + projector + Llama decoder,
// returning the decoder's last hidden state instead of logits. Also the reference's
// `get_placeholder_mask`.
//
//   auto full = plm::PerceptionLMForConditionalGeneration::FromPretrained("Perception-LM-1B");
//   plm::PerceptionLMModel base(*full);            // a view, like `full.model` in Python
//   plm::BaseModelOutputs o = base.Forward(inputs);  // o.last_hidden_state: [batch, len, hidden]
//   plm::PlaceholderMasks m = base.GetPlaceholderMask(inputs);  // where media features go
//
// Thread-safety: as PerceptionLMForConditionalGeneration (const methods, any number of threads,
// one KVCache per call).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plm/model.h"

namespace plm {

struct BaseModelOutputs {
  Tensor last_hidden_state;           // [batch, len, hidden], after the final RMSNorm
  std::vector<Tensor> hidden_states;  // when output_hidden_states: (layers + 1) x [b, len, hidden]
  std::vector<Tensor> attentions;     // when output_attentions
  VisionOutputs image;                // image_hidden_states: image.features
  VisionOutputs video;                // video_hidden_states: video.features
};

// Which sequence positions are media placeholders, row-major over [batch, len].
struct PlaceholderMasks {
  std::vector<uint8_t> image;  // 1 where the position takes an image feature row
  std::vector<uint8_t> video;
  int64_t image_tokens = 0, video_tokens = 0;
};

class PerceptionLMModel {
 public:
  // Loads a checkpoint; the LM head is loaded (it is part of the checkpoint) but not used.
  static std::unique_ptr<PerceptionLMModel> FromPretrained(const std::string& model_dir,
                                                           const LoadOptions& options = {});
  // A view of a loaded model, which must outlive it.
  explicit PerceptionLMModel(const PerceptionLMForConditionalGeneration& model);

  const PerceptionLMConfig& config() const { return model_->config(); }
  const PerceptionLMForConditionalGeneration& model() const { return *model_; }

  // forward(): the same inputs as PerceptionLMForConditionalGeneration::Forward (labels and
  // logits_to_keep do not apply and are ignored).
  BaseModelOutputs Forward(const ForwardInputs& inputs, KVCache* cache = nullptr) const;

  // get_image_features(): projector output [tiles, tokens_per_tile, hidden].
  Tensor GetImageFeatures(const PixelInputs& pixels) const;

  // get_placeholder_mask(): placeholder positions found by id in input_ids, or, when only
  // inputs_embeds is given, by equality with the placeholder tokens' embeddings (as the
  // reference). When `image_feature_rows` / `video_feature_rows` are given, a count that
  // differs is a kInvalidArgument error naming both counts.
  PlaceholderMasks GetPlaceholderMask(
      const ForwardInputs& inputs, std::optional<int64_t> image_feature_rows = std::nullopt,
      std::optional<int64_t> video_feature_rows = std::nullopt) const;

 private:
  std::unique_ptr<PerceptionLMForConditionalGeneration> owned_;
  const PerceptionLMForConditionalGeneration* model_;
};

}  // namespace plm
