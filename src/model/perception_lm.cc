#include <algorithm>
#include <cmath>
#include <functional>

#include "core/ops.h"
#include "core/thread_pool.h"
#include "model/llama_decoder.h"
#include "model/projector.h"
#include "model/vision_tower.h"
#include "model/weight_store.h"
#include "plm/error.h"
#include "plm/model.h"

namespace plm {

const char* ComputeTypeName(ComputeType t) {
  switch (t) {
    case ComputeType::kF32:
      return "f32";
    case ComputeType::kBF16:
      return "bf16";
    case ComputeType::kQ8:
      return "q8";
    case ComputeType::kQ4:
      return "q4";
  }
  return "?";
}

ComputeType ParseComputeType(const std::string& s) {
  for (ComputeType t : {ComputeType::kF32, ComputeType::kBF16, ComputeType::kQ8, ComputeType::kQ4})
    if (s == ComputeTypeName(t)) return t;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown compute type \"" + s + "\" (expected f32, bf16, q8 or q4)");
}

ComputeType StoredComputeType(const PerceptionLMConfig& config) {
  return config.dtype == "bfloat16" ? ComputeType::kBF16 : ComputeType::kF32;
}

struct PerceptionLMForConditionalGeneration::Impl {
  PerceptionLMConfig config;
  WeightStore weights;
  std::unique_ptr<VisionTower> vision;
  std::unique_ptr<Projector> projector;
  std::unique_ptr<LlamaDecoder> decoder;
};

PerceptionLMForConditionalGeneration::PerceptionLMForConditionalGeneration(
    std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
PerceptionLMForConditionalGeneration::~PerceptionLMForConditionalGeneration() = default;

std::unique_ptr<PerceptionLMForConditionalGeneration>
PerceptionLMForConditionalGeneration::FromPretrained(const std::string& dir,
                                                     const LoadOptions& options) {
  auto progress = [&](const std::string& s) {
    if (options.on_progress) options.on_progress(s);
  };
  const int threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  SetBlasThreads(threads);
  ThreadPool::SetGlobalThreads(threads);
  auto impl = std::make_unique<Impl>();
  progress("reading config");
  impl->config = PerceptionLMConfig::FromFile(dir + "/config.json");
  progress("opening weights");
  impl->weights = WeightStore::Open(dir, options.huge_pages, options.compute);
  progress("loading vision tower");
  impl->vision = std::make_unique<VisionTower>(impl->config.vision, options, impl->weights,
                                               "model.vision_tower.timm_model.");
  progress("loading projector");
  impl->projector = std::make_unique<Projector>(impl->config, options, impl->weights,
                                                "model.multi_modal_projector.");
  progress("loading language model");
  impl->decoder = std::make_unique<LlamaDecoder>(impl->config.text, options, impl->weights,
                                                 "model.language_model.", "lm_head.weight");
  impl->weights.CheckAllUsed();
  return std::unique_ptr<PerceptionLMForConditionalGeneration>(
      new PerceptionLMForConditionalGeneration(std::move(impl)));
}

const PerceptionLMConfig& PerceptionLMForConditionalGeneration::config() const {
  return impl_->config;
}

ComputeType PerceptionLMForConditionalGeneration::compute() const {
  return impl_->decoder->compute();
}

PerceptionLMForConditionalGeneration::WeightBytes
PerceptionLMForConditionalGeneration::weight_bytes() const {
  WeightBytes b;
  b.vision = impl_->vision->held_bytes();
  b.vision += impl_->projector->held_bytes();
  b.text = impl_->decoder->held_bytes();
  return b;
}

KVCache PerceptionLMForConditionalGeneration::NewCache(int64_t batch, int64_t capacity) const {
  return impl_->decoder->NewCache(batch, capacity);
}

void PerceptionLMForConditionalGeneration::ComputeLogits(const float* hidden, int64_t rows,
                                                         float* logits) const {
  impl_->decoder->Logits(hidden, rows, logits);
}

void PerceptionLMForConditionalGeneration::PrepareVision() const {
  impl_->vision->Prepare();
}

Tensor PerceptionLMForConditionalGeneration::GetImageFeatures(
    const PixelInputs& pixels, VisionOutputs* vision, bool block_outputs,
    const std::function<void(int64_t, int64_t)>& on_tile) const {
  if (pixels.tiles <= 0 || pixels.data == nullptr)
    throw Error(ErrorCode::kInvalidArgument, "GetImageFeatures needs at least one tile of pixels");
  const VisionConfig& vc = impl_->config.vision;
  if (pixels.size != 0 && (pixels.size != vc.img_height || pixels.size != vc.img_width))
    throw Error(ErrorCode::kInvalidArgument,
                "the pixel tiles are " + std::to_string(pixels.size) + "x" +
                    std::to_string(pixels.size) + " but the vision tower takes " +
                    std::to_string(vc.img_height) + "x" + std::to_string(vc.img_width) +
                    " (processor_config.json tile_size / size must match config.json's "
                    "vision_config img_size)");
  std::vector<Tensor> blocks;
  Tensor last =
      impl_->vision->Forward(pixels.data, pixels.tiles, block_outputs ? &blocks : nullptr, on_tile);
  Tensor features = impl_->projector->Forward(last);
  if (vision != nullptr) {
    vision->last_hidden_state = std::move(last);
    vision->block_outputs = std::move(blocks);
    vision->features = features;
  }
  return features;
}

namespace {

// Scatters feature rows into the embedding rows whose mask is set, in row-major order.
void Scatter(const std::vector<uint8_t>& mask, const Tensor& features, float* embeds,
             int64_t hidden, const char* what) {
  int64_t n = 0;
  for (uint8_t m : mask) n += m;
  const int64_t rows = features.numel() / hidden;
  if (n != rows)
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + " features and " + what + " tokens do not match: tokens: " +
                    std::to_string(n) + ", features: " + std::to_string(rows) + " rows");
  int64_t next = 0;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (!mask[i]) continue;
    std::copy_n(features.ptr() + next * hidden, hidden, embeds + static_cast<int64_t>(i) * hidden);
    ++next;
  }
}

}  // namespace

Tensor PerceptionLMForConditionalGeneration::GetInputEmbeddings(const ForwardInputs& in,
                                                                ForwardOutputs* out) const {
  const int64_t B = in.batch, L = in.len, D = impl_->config.text.hidden_size, n = B * L;
  if (B <= 0 || L <= 0)
    throw Error(ErrorCode::kInvalidArgument, "forward needs batch > 0 and len > 0");
  Tensor embeds({B, L, D});
  std::vector<uint8_t> image_mask(static_cast<size_t>(n), 0), video_mask(static_cast<size_t>(n), 0);
  if (!in.input_ids.empty()) {
    if (static_cast<int64_t>(in.input_ids.size()) != n)
      throw Error(ErrorCode::kInvalidArgument,
                  "input_ids has " + std::to_string(in.input_ids.size()) +
                      " elements, expected batch*len = " + std::to_string(n));
    impl_->decoder->Embed(in.input_ids.data(), n, embeds.ptr());
    for (int64_t i = 0; i < n; ++i) {
      image_mask[i] = in.input_ids[i] == impl_->config.image_token_id;
      video_mask[i] = in.input_ids[i] == impl_->config.video_token_id;
    }
  } else {
    if (static_cast<int64_t>(in.inputs_embeds.size()) != n * D)
      throw Error(ErrorCode::kInvalidArgument,
                  "inputs_embeds has " + std::to_string(in.inputs_embeds.size()) +
                      " elements, expected batch*len*hidden = " + std::to_string(n * D));
    embeds.data = in.inputs_embeds;
    // As the reference: placeholders are the rows equal to the placeholder token's embedding.
    std::vector<float> img(D), vid(D);
    const int64_t ids[2] = {impl_->config.image_token_id, impl_->config.video_token_id};
    impl_->decoder->Embed(&ids[0], 1, img.data());
    impl_->decoder->Embed(&ids[1], 1, vid.data());
    for (int64_t i = 0; i < n; ++i) {
      image_mask[i] = std::equal(img.begin(), img.end(), embeds.ptr() + i * D);
      video_mask[i] = std::equal(vid.begin(), vid.end(), embeds.ptr() + i * D);
    }
  }
  VisionOutputs scratch_image, scratch_video;
  const int64_t image_tiles = in.pixel_values.tiles,
                all_tiles = image_tiles + in.pixel_values_videos.tiles;
  auto progress = [&](int64_t offset) -> std::function<void(int64_t, int64_t)> {
    if (!in.on_vision_tile) return {};
    return [&in, offset, all_tiles](int64_t done, int64_t) {
      in.on_vision_tile(offset + done, all_tiles);
    };
  };
  if (in.pixel_values.tiles > 0) {
    VisionOutputs* v = out ? &out->image : &scratch_image;
    Tensor f = GetImageFeatures(in.pixel_values, v, in.output_vision_hidden_states, progress(0));
    Scatter(image_mask, f, embeds.ptr(), D, "image");
  }
  if (in.pixel_values_videos.tiles > 0) {
    VisionOutputs* v = out ? &out->video : &scratch_video;
    Tensor f = GetImageFeatures(in.pixel_values_videos, v, in.output_vision_hidden_states,
                                progress(image_tiles));
    Scatter(video_mask, f, embeds.ptr(), D, "video");
  }
  return embeds;
}

namespace {

// The RoPE positions: `in.position_ids`, or each row continuing from its cached length.
std::vector<int64_t> PositionIds(const ForwardInputs& in,
                                 const std::function<int64_t(int64_t row)>& cached_length) {
  const int64_t B = in.batch, L = in.len;
  if (!in.position_ids.empty()) {
    if (static_cast<int64_t>(in.position_ids.size()) != B * L)
      throw Error(ErrorCode::kInvalidArgument, "position_ids must have batch*len elements");
    return in.position_ids;
  }
  std::vector<int64_t> positions(static_cast<size_t>(B * L));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t past = cached_length(b);
    for (int64_t l = 0; l < L; ++l) positions[b * L + l] = past + l;
  }
  return positions;
}

}  // namespace

namespace {

// The rows whose logits `in` asks for: logits_positions, else the last logits_to_keep, else all.
std::vector<int64_t> KeptPositions(const ForwardInputs& in) {
  const int64_t L = in.len;
  std::vector<int64_t> keep = in.logits_positions;
  if (keep.empty()) {
    const int64_t k = in.logits_to_keep > 0 ? std::min(in.logits_to_keep, L) : L;
    for (int64_t i = L - k; i < L; ++i) keep.push_back(i);
  }
  for (int64_t p : keep)
    if (p < 0 || p >= L)
      throw Error(ErrorCode::kInvalidArgument,
                  "logits position " + std::to_string(p) + " is out of range");
  return keep;
}

}  // namespace

// Logits of the rows `keep` (KeptPositions) of decoder output `hidden` (rows first..len-1 of
// each batch row): [batch, kept, vocab].
Tensor PerceptionLMForConditionalGeneration::KeptLogits(const ForwardInputs& in,
                                                        const std::vector<int64_t>& keep,
                                                        const Tensor& hidden, int64_t first) const {
  const int64_t B = in.batch, D = impl_->config.text.hidden_size, V = impl_->config.text.vocab_size;
  const int64_t held = in.len - first;
  const auto K = static_cast<int64_t>(keep.size());
  Tensor logits({B, K, V});
  std::vector<float> rows(static_cast<size_t>(K * D));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < K; ++i) {
      if (keep[i] < first)
        throw Error(ErrorCode::kInternal, "the decoder dropped a row whose logits are needed");
      std::copy_n(hidden.ptr() + (b * held + keep[i] - first) * D, D, rows.data() + i * D);
    }
    impl_->decoder->Logits(rows.data(), K, logits.ptr() + b * K * V);
  }
  return logits;
}

ForwardOutputs PerceptionLMForConditionalGeneration::ForwardSequences(
    const ForwardInputs& in, std::span<KVCache* const> caches) const {
  const int64_t B = in.batch, L = in.len;
  if (in.pixel_values.tiles > 0 || in.pixel_values_videos.tiles > 0 || !in.attention_mask.empty() ||
      !in.labels.empty() || in.output_attentions)
    throw Error(ErrorCode::kInvalidArgument,
                "ForwardSequences takes token ids or embeddings only (no pixels, attention_mask, "
                "labels or attentions); run media prompts through Forward with their own cache");
  if (static_cast<int64_t>(caches.size()) != B)
    throw Error(ErrorCode::kInvalidArgument,
                "ForwardSequences needs one KV cache per row: " + std::to_string(B) + " rows, " +
                    std::to_string(caches.size()) + " caches");
  ForwardOutputs out;
  Tensor embeds = GetInputEmbeddings(in, &out);
  for (KVCache* c : caches)
    if (c == nullptr)
      throw Error(ErrorCode::kInvalidArgument, "ForwardSequences got a null KV cache");
  const std::vector<int64_t> positions =
      PositionIds(in, [&](int64_t b) { return caches[b]->length(); });
  DecoderRequest req;
  req.embeds = embeds.ptr();
  req.positions = positions.data();
  req.batch = B;
  req.len = L;
  req.output_hidden_states = in.output_hidden_states;
  DecoderResult r = impl_->decoder->ForwardSequences(req, caches);
  out.hidden_states = std::move(r.hidden_states);
  out.logits = KeptLogits(in, KeptPositions(in), r.hidden, r.hidden_first);
  return out;
}

ForwardOutputs PerceptionLMForConditionalGeneration::Forward(const ForwardInputs& in,
                                                             KVCache* cache) const {
  ForwardOutputs out;
  const int64_t B = in.batch, L = in.len, D = impl_->config.text.hidden_size,
                V = impl_->config.text.vocab_size;
  // Embeddings without media to scatter are read in place (a 9.5k-token prompt's are 78 MB).
  Tensor embeds;
  const float* embeds_ptr = nullptr;
  if (in.input_ids.empty() && in.pixel_values.tiles == 0 && in.pixel_values_videos.tiles == 0 &&
      B > 0 && L > 0 && static_cast<int64_t>(in.inputs_embeds.size()) == B * L * D) {
    embeds_ptr = in.inputs_embeds.data();
  } else {
    embeds = GetInputEmbeddings(in, &out);  // also reports a wrong size
    embeds_ptr = embeds.ptr();
  }
  KVCache local;
  if (cache == nullptr) {
    local = NewCache(B, L);
    cache = &local;
  }
  const int64_t past = cache->length();
  const std::vector<int64_t> positions = PositionIds(in, [past](int64_t) { return past; });
  std::vector<uint8_t> mask;
  if (!in.attention_mask.empty()) {
    if (static_cast<int64_t>(in.attention_mask.size()) != B * L)
      throw Error(ErrorCode::kInvalidArgument, "attention_mask must have batch*len elements");
    for (int64_t m : in.attention_mask) mask.push_back(m != 0);
  }
  DecoderRequest req;
  req.embeds = embeds_ptr;
  req.positions = positions.data();
  req.mask = mask.empty() ? nullptr : mask.data();
  req.batch = B;
  req.len = L;
  req.output_hidden_states = in.output_hidden_states;
  req.output_attentions = in.output_attentions;
  const std::vector<int64_t> keep = KeptPositions(in);
  if (in.labels.empty() && !keep.empty())  // the loss reads every row
    req.hidden_from = *std::min_element(keep.begin(), keep.end());
  DecoderResult r = impl_->decoder->Forward(req, cache);
  out.hidden_states = std::move(r.hidden_states);
  out.attentions = std::move(r.attentions);
  out.logits = KeptLogits(in, keep, r.hidden, r.hidden_first);

  if (!in.labels.empty()) {
    if (static_cast<int64_t>(in.labels.size()) != B * L)
      throw Error(ErrorCode::kInvalidArgument, "labels must have batch*len elements");
    // Mean next-token cross-entropy (labels shifted left), ignoring -100, as the reference.
    double total = 0;
    int64_t count = 0;
    std::vector<float> logits(static_cast<size_t>(V));
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t + 1 < L; ++t) {
        const int64_t target = in.labels[b * L + t + 1];
        if (target == -100) continue;
        if (target < 0 || target >= V)
          throw Error(ErrorCode::kInvalidArgument, "label id out of range");
        impl_->decoder->Logits(r.hidden.ptr() + (b * L + t) * D, 1, logits.data());
        const float mx = *std::max_element(logits.begin(), logits.end());
        double se = 0;
        for (float x : logits) se += std::exp(static_cast<double>(x) - mx);
        total += (std::log(se) + mx) - logits[target];
        ++count;
      }
    }
    out.loss = count ? static_cast<float>(total / static_cast<double>(count)) : NAN;
  }
  return out;
}

}  // namespace plm
