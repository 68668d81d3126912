// PerceptionLMModel on top of the public PerceptionLMForConditionalGeneration API.
#include <algorithm>

#include "plm/error.h"
#include "plm/perception_lm_model.h"

namespace plm {

std::unique_ptr<PerceptionLMModel> PerceptionLMModel::FromPretrained(const std::string& model_dir,
                                                                     const LoadOptions& options) {
  auto full = PerceptionLMForConditionalGeneration::FromPretrained(model_dir, options);
  auto base = std::make_unique<PerceptionLMModel>(*full);
  base->owned_ = std::move(full);
  return base;
}

PerceptionLMModel::PerceptionLMModel(const PerceptionLMForConditionalGeneration& model)
    : model_(&model) {}

BaseModelOutputs PerceptionLMModel::Forward(const ForwardInputs& inputs, KVCache* cache) const {
  ForwardInputs in = inputs;
  const bool keep_all = inputs.output_hidden_states;
  in.output_hidden_states = true;  // the last entry is the normed last hidden state
  in.labels.clear();
  in.logits_positions.clear();
  in.logits_to_keep = 1;  // the head runs on one row per sequence only
  ForwardOutputs out = model_->Forward(in, cache);
  BaseModelOutputs r;
  if (out.hidden_states.empty())
    throw Error(ErrorCode::kInternal, "the decoder returned no hidden states");
  r.last_hidden_state = out.hidden_states.back();
  if (keep_all) r.hidden_states = std::move(out.hidden_states);
  r.attentions = std::move(out.attentions);
  r.image = std::move(out.image);
  r.video = std::move(out.video);
  return r;
}

Tensor PerceptionLMModel::GetImageFeatures(const PixelInputs& pixels) const {
  return model_->GetImageFeatures(pixels);
}

namespace {

void CheckCount(const char* what, int64_t tokens, std::optional<int64_t> rows) {
  if (rows && *rows != tokens)
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + " features and " + what + " tokens do not match: tokens: " +
                    std::to_string(tokens) + ", features: " + std::to_string(*rows) + " rows");
}

}  // namespace

PlaceholderMasks PerceptionLMModel::GetPlaceholderMask(const ForwardInputs& in,
                                                       std::optional<int64_t> image_rows,
                                                       std::optional<int64_t> video_rows) const {
  const PerceptionLMConfig& cfg = model_->config();
  const int64_t n = in.batch * in.len, D = cfg.text.hidden_size;
  if (in.batch <= 0 || in.len <= 0)
    throw Error(ErrorCode::kInvalidArgument, "placeholder mask needs batch > 0 and len > 0");
  PlaceholderMasks m;
  m.image.assign(static_cast<size_t>(n), 0);
  m.video.assign(static_cast<size_t>(n), 0);
  if (!in.input_ids.empty()) {
    if (static_cast<int64_t>(in.input_ids.size()) != n)
      throw Error(ErrorCode::kInvalidArgument,
                  "input_ids has " + std::to_string(in.input_ids.size()) +
                      " elements, expected batch*len = " + std::to_string(n));
    for (int64_t i = 0; i < n; ++i) {
      m.image[i] = in.input_ids[i] == cfg.image_token_id;
      m.video[i] = in.input_ids[i] == cfg.video_token_id;
    }
  } else {
    if (static_cast<int64_t>(in.inputs_embeds.size()) != n * D)
      throw Error(ErrorCode::kInvalidArgument,
                  "inputs_embeds has " + std::to_string(in.inputs_embeds.size()) +
                      " elements, expected batch*len*hidden = " + std::to_string(n * D));
    // The placeholder tokens' embedding rows, through the public embedding path.
    ForwardInputs ids;
    ids.input_ids = {cfg.image_token_id, cfg.video_token_id};
    ids.batch = 1;
    ids.len = 2;
    const Tensor e = model_->GetInputEmbeddings(ids, nullptr);
    const float* img = e.ptr();
    const float* vid = e.ptr() + D;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = in.inputs_embeds.data() + i * D;
      m.image[i] = std::equal(img, img + D, row);
      m.video[i] = std::equal(vid, vid + D, row);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    m.image_tokens += m.image[i];
    m.video_tokens += m.video[i];
  }
  CheckCount("image", m.image_tokens, image_rows);
  CheckCount("video", m.video_tokens, video_rows);
  return m;
}

}  // namespace plm
