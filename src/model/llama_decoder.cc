#include "model/llama_decoder.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/attention.h"
#include "core/dtype.h"
#include "core/key_tiles.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/phase_times.h"
#include "core/rms_norm_fast.h"
#include "core/thread_pool.h"
#include "plm/error.h"

namespace plm {

std::vector<float> LlamaInvFreq(const TextConfig& cfg) {
  const int64_t hd = cfg.head_dim;
  std::vector<float> inv(static_cast<size_t>(hd / 2));
  const float theta = static_cast<float>(cfg.rope.rope_theta);
  for (int64_t d = 0; d < hd / 2; ++d) {
    const float e = static_cast<float>(2 * d) / static_cast<float>(hd);
    inv[d] = 1.0f / std::pow(theta, e);
  }
  if (cfg.rope.rope_type == "llama3") {
    const float factor = static_cast<float>(cfg.rope.factor);
    const float low = static_cast<float>(cfg.rope.low_freq_factor);
    const float high = static_cast<float>(cfg.rope.high_freq_factor);
    const float old = static_cast<float>(cfg.rope.original_max_position_embeddings);
    const float low_wl = old / low, high_wl = old / high;
    for (auto& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > low_wl) {
        f = f / factor;
      } else if (wavelen >= high_wl) {
        const float s = (old / wavelen - low) / (high - low);
        f = (1.0f - s) * f / factor + s * f;
      }
    }
  }
  return inv;
}

LlamaDecoder::LlamaDecoder(const TextConfig& cfg, const LoadOptions& options, WeightStore& ws,
                           const std::string& p, const std::string& lm_head)
    : cfg_(cfg),
      compute_(ws.EffectiveCompute(options.compute)),
      prefill_chunk_(options.prefill_chunk > 0 ? options.prefill_chunk : 0) {
  const int64_t D = cfg.hidden_size, hd = cfg.head_dim, H = cfg.num_attention_heads;
  const int64_t KV = cfg.num_key_value_heads, I = cfg.intermediate_size, V = cfg.vocab_size;
  const TensorView& embed = ws.Get(p + "embed_tokens.weight", {V, D});
  if (compute_ == ComputeType::kF32) {
    embed_ = F32Weights(embed);
  } else {
    // Rows are converted on lookup; the table stays in the checkpoint's dtype in place.
    embed_view_ = embed;
  }
  auto lin = [&](const std::string& n, int64_t out, int64_t in) {
    return LoadLinear(ws, n, out, in, "", compute_);
  };
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    Layer layer;
    layer.input_norm = F32Weights(ws.Get(l + "input_layernorm.weight", {D}));
    layer.post_norm = F32Weights(ws.Get(l + "post_attention_layernorm.weight", {D}));
    layer.q = lin(l + "self_attn.q_proj.weight", H * hd, D);
    layer.k = lin(l + "self_attn.k_proj.weight", KV * hd, D);
    layer.v = lin(l + "self_attn.v_proj.weight", KV * hd, D);
    layer.o = lin(l + "self_attn.o_proj.weight", D, H * hd);
    layer.gate = lin(l + "mlp.gate_proj.weight", I, D);
    layer.up = lin(l + "mlp.up_proj.weight", I, D);
    layer.down = lin(l + "mlp.down_proj.weight", D, I);
    // bf16/q8/q4 weights in their blocked layouts: faster prefill GEMMs, decode streams them.
    for (Linear* x : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down})
      x->Pack();
    layers_.push_back(std::move(layer));
  }
  norm_ = F32Weights(ws.Get(p + "norm.weight", {D}));
  // The reference uses lm_head.weight when the checkpoint has it, else the tied embeddings.
  if (ws.Has(lm_head)) {
    lm_head_ = lin(lm_head, V, D);
    tied_ = false;
  } else if (!cfg.tie_word_embeddings) {
    throw Error(ErrorCode::kNotFound,
                "missing tensor \"" + lm_head + "\" (tie_word_embeddings is false)");
  } else if (compute_ != ComputeType::kF32) {
    lm_head_ = Linear(embed, nullptr, compute_);
    tied_ = false;
  }
  // A bf16 LM head tied to the embeddings reads the embedding table in place: a packed copy would
  // double those 0.5 GB once a long prompt's lookups fault the table back in.
  const bool shares_embeddings = !ws.Has(lm_head) && compute_ == ComputeType::kBF16;
  if (!shares_embeddings) lm_head_.Pack();
  inv_freq_ = LlamaInvFreq(cfg);
}

KVCache LlamaDecoder::NewCache(int64_t batch, int64_t capacity) const {
  // The reduced-precision paths keep keys and values in bf16 (half the bytes per decoded token);
  // the f32 reference path keeps them in float32.
  return KVCache(cfg_.num_hidden_layers, batch, cfg_.num_key_value_heads, cfg_.head_dim, capacity,
                 compute_ == ComputeType::kF32 ? KVType::kF32 : KVType::kBF16);
}

void LlamaDecoder::Embed(const int64_t* ids, int64_t n, float* out) const {
  const int64_t D = cfg_.hidden_size;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(ids[i]) +
                                                   " is outside the vocabulary [0, " +
                                                   std::to_string(cfg_.vocab_size) + ")");
    if (compute_ == ComputeType::kF32) {
      std::copy_n(embed_.data() + ids[i] * D, D, out + i * D);
    } else {
      const size_t es = DTypeSize(embed_view_.dtype);
      ConvertToF32(embed_view_.dtype, embed_view_.data + static_cast<size_t>(ids[i] * D) * es,
                   out + i * D, static_cast<size_t>(D));
    }
  }
}

void LlamaDecoder::RopeAngles(int64_t pos, float* cs, float* sn) const {
  for (int64_t d = 0; d < cfg_.head_dim / 2; ++d) {
    const float th = inv_freq_[d] * static_cast<float>(pos);
    cs[d] = static_cast<float>(std::cos(static_cast<double>(th)));
    sn[d] = static_cast<float>(std::sin(static_cast<double>(th)));
  }
}

// HF rotate_half RoPE on `heads` vectors of head_dim at one position.
void LlamaDecoder::ApplyRope(float* x, int64_t heads, const float* cs, const float* sn) const {
  const int64_t hd = cfg_.head_dim, half = hd / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * hd;
    for (int64_t d = 0; d < half; ++d) {
      const float a = v[d], b = v[d + half];
      v[d] = a * cs[d] - b * sn[d];
      v[d + half] = b * cs[d] + a * sn[d];
    }
  }
}

DecoderResult LlamaDecoder::Forward(const DecoderRequest& req, KVCache* cache) const {
  const int64_t B = req.batch, L = req.len;
  if (cache->batch() != B)
    throw Error(ErrorCode::kInternal, "KV cache batch does not match the request");
  // Padded rows attend uniformly to every key of the pass (the reference's finfo.min masking),
  // which slicing would change: only prompts without padding are sliced.
  const bool padded = req.mask != nullptr && std::find(req.mask, req.mask + L, 0) != req.mask + L;
  if (prefill_chunk_ > 0 && L > prefill_chunk_ && B == 1 && compute_ != ComputeType::kF32 &&
      !padded && !req.output_hidden_states && !req.output_attentions) {
    // Slices through the whole decoder, one after the other: a slice's rows see the earlier
    // slices in the cache, so the result is the same and the activations stay slice-sized.
    const int64_t D = cfg_.hidden_size;
    cache->Reserve(cache->length() + L);  // once, not once per slice
    // Only the rows the caller needs are kept (a 9.5k-row hidden state is 78 MB at 2048 wide).
    const int64_t first = std::clamp<int64_t>(req.hidden_from, 0, L - 1);
    DecoderResult res;
    res.hidden = Tensor({1, L - first, D});
    res.hidden_first = first;
    for (int64_t s = 0; s < L; s += prefill_chunk_) {
      DecoderRequest part = req;
      part.len = std::min(prefill_chunk_, L - s);
      part.embeds = req.embeds + s * D;
      part.positions = req.positions + s;
      part.mask = req.mask ? req.mask + s : nullptr;
      part.hidden_from = 0;
      const DecoderResult r = Forward(part, cache);
      const int64_t from = std::max(s, first), to = s + part.len;
      if (from < to)
        std::copy_n(r.hidden.ptr() + (from - s) * D, (to - from) * D,
                    res.hidden.ptr() + (from - first) * D);
    }
    return res;
  }
  const int64_t past = cache->length();
  cache->Reserve(past + L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      cache->set_valid(b, past + l, req.mask ? req.mask[b * L + l] : 1);
  std::vector<CacheSlot> slots(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) slots[b] = {cache, b, past};
  DecoderResult res = Run(req, slots);
  cache->Advance(L);
  return res;
}

DecoderResult LlamaDecoder::ForwardSequences(const DecoderRequest& req,
                                             std::span<KVCache* const> caches) const {
  const int64_t B = req.batch, L = req.len;
  if (static_cast<int64_t>(caches.size()) != B)
    throw Error(ErrorCode::kInvalidArgument, "ForwardSequences needs one KV cache per row (" +
                                                 std::to_string(B) + " rows, " +
                                                 std::to_string(caches.size()) + " caches)");
  if (req.mask != nullptr || req.output_attentions)
    throw Error(ErrorCode::kInvalidArgument,
                "ForwardSequences takes no attention mask and returns no attentions");
  std::vector<CacheSlot> slots(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    KVCache* c = caches[b];
    if (c == nullptr || c->batch() != 1)
      throw Error(ErrorCode::kInvalidArgument, "ForwardSequences needs batch-1 KV caches");
    for (int64_t o = 0; o < b; ++o)
      if (caches[o] == c)
        throw Error(ErrorCode::kInvalidArgument, "ForwardSequences got the same KV cache twice");
    const int64_t past = c->length();
    c->Reserve(past + L);
    for (int64_t l = 0; l < L; ++l) c->set_valid(0, past + l, 1);
    slots[b] = {c, 0, past};
  }
  DecoderResult res = Run(req, slots);
  for (KVCache* c : caches) c->Advance(L);
  return res;
}

DecoderResult LlamaDecoder::Run(const DecoderRequest& req, std::span<const CacheSlot> slots) const {
  const int64_t B = req.batch, L = req.len, D = cfg_.hidden_size, hd = cfg_.head_dim;
  const int64_t H = cfg_.num_attention_heads, KV = cfg_.num_key_value_heads,
                I = cfg_.intermediate_size;
  const int64_t rep = H / KV, rows = B * L;
  int64_t max_total = 0;
  for (const CacheSlot& s : slots) max_total = std::max(max_total, s.past + L);

  DecoderResult res;
  std::vector<float> h(req.embeds, req.embeds + rows * D);
  if (req.output_hidden_states) {
    Tensor t({B, L, D});
    t.data = h;
    res.hidden_states.push_back(std::move(t));
  }
  std::vector<float> x(rows * D), q(rows * H * hd), k(rows * KV * hd), v(rows * KV * hd),
      attn(rows * H * hd);
  std::vector<float> g(rows * I), u(rows * I), scores(max_total);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  GemmEpilogue residual;
  residual.kind = GemmEpilogue::Kind::kAddScaled;
  std::vector<float> rope_cos(rows * (hd / 2)), rope_sin(rows * (hd / 2));
  for (int64_t r = 0; r < rows; ++r)
    RopeAngles(req.positions[r], rope_cos.data() + r * (hd / 2), rope_sin.data() + r * (hd / 2));
  // The float32 reference path keeps the reference RMSNorm (one double sum per element).
  const auto norm = compute_ == ComputeType::kF32 ? RmsNorm : RmsNormFast;

  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& layer = layers_[li];
    const auto layer_idx = static_cast<int64_t>(li);
    {
      PhaseScope t(Phase::kNorms);
      norm(h.data(), layer.input_norm.data(), eps, x.data(), rows, D);
    }
    {
      PhaseScope t(Phase::kQkv);
      Linear::ForwardMany(x.data(), rows, {&layer.q, &layer.k, &layer.v},
                          {q.data(), k.data(), v.data()});
    }
    // RoPE and the cache writes, attention, then the output projection: timed in sequence.
    std::optional<PhaseScope> phase(Phase::kRopeKv);
    for (int64_t r = 0; r < rows; ++r) {
      const float* cs = rope_cos.data() + r * (hd / 2);
      const float* sn = rope_sin.data() + r * (hd / 2);
      ApplyRope(q.data() + r * H * hd, H, cs, sn);
      ApplyRope(k.data() + r * KV * hd, KV, cs, sn);
    }
    for (int64_t b = 0; b < B; ++b) {
      const CacheSlot& s = slots[b];
      const bool c16 = s.cache->type() == KVType::kBF16;
      for (int64_t kh = 0; kh < KV; ++kh)
        for (int64_t l = 0; l < L; ++l) {
          const int64_t r = b * L + l;
          const float* ks = k.data() + (r * KV + kh) * hd;
          const float* vs = v.data() + (r * KV + kh) * hd;
          if (c16) {
            uint16_t* kd = s.cache->k_bf16(layer_idx, s.row, kh);
            uint16_t* vd = s.cache->v_bf16(layer_idx, s.row, kh) + (s.past + l) * hd;
            for (int64_t d = 0; d < hd; ++d) {
              kd[KeyTileIndex(s.past + l, d, hd)] = F32ToBf16(ks[d]);
              vd[d] = F32ToBf16(vs[d]);
            }
          } else {
            std::copy_n(ks, hd, s.cache->k(layer_idx, s.row, kh) + (s.past + l) * hd);
            std::copy_n(vs, hd, s.cache->v(layer_idx, s.row, kh) + (s.past + l) * hd);
          }
        }
    }
    phase.reset();
    phase.emplace(Phase::kAttention);
    Tensor probs;
    // Attentions are only returned for a shared cache, where every row has the same length.
    if (req.output_attentions) probs = Tensor({B, H, L, max_total});
    const bool fused = compute_ != ComputeType::kF32 && !req.output_attentions;
    if (fused) FusedAttentionLayer(q.data(), slots, layer_idx, L, attn.data());
    for (int64_t b = 0; b < B && !fused; ++b) {
      const CacheSlot& s = slots[b];
      const int64_t past = s.past, total = past + L;
      const uint8_t* valid = s.cache->valid_row(s.row);
      std::vector<float> k32, v32;  // a bf16 cache read as float32 (attention probabilities)
      for (int64_t hh = 0; hh < H; ++hh) {
        const float* kc;
        const float* vc;
        if (s.cache->type() == KVType::kBF16) {
          if (hh % rep == 0) {
            k32.resize(static_cast<size_t>(total * hd));
            v32.resize(k32.size());
            const uint16_t* k16 = s.cache->k_bf16(layer_idx, s.row, hh / rep);
            const uint16_t* v16 = s.cache->v_bf16(layer_idx, s.row, hh / rep);
            for (int64_t j = 0; j < total; ++j)
              for (int64_t d = 0; d < hd; ++d) {
                k32[j * hd + d] = Bf16ToF32(k16[KeyTileIndex(j, d, hd)]);
                v32[j * hd + d] = Bf16ToF32(v16[j * hd + d]);
              }
          }
          kc = k32.data();
          vc = v32.data();
        } else {
          kc = s.cache->k(layer_idx, s.row, hh / rep);
          vc = s.cache->v(layer_idx, s.row, hh / rep);
        }
        for (int64_t l = 0; l < L; ++l) {
          const float* qv = q.data() + ((b * L + l) * H + hh) * hd;
          const int64_t qpos = past + l;
          bool any = false;
          for (int64_t j = 0; j < total; ++j) {
            if (j <= qpos && valid[j]) {
              float s = 0;
              for (int64_t d = 0; d < hd; ++d) s += qv[d] * kc[j * hd + d];
              scores[j] = s * scale;
              any = true;
            } else {
              scores[j] = -std::numeric_limits<float>::infinity();
            }
          }
          if (any) {
            SoftmaxInPlace(scores.data(), total);
          } else {
            // The reference adds finfo(float32).min to masked scores, so a row with no visible
            // key (left padding) attends uniformly to every key.
            std::fill_n(scores.data(), total, 1.0f / static_cast<float>(total));
          }
          float* out = attn.data() + ((b * L + l) * H + hh) * hd;
          std::fill_n(out, hd, 0.0f);
          for (int64_t j = 0; j < total; ++j) {
            const float p = scores[j];
            if (p == 0.0f) continue;
            for (int64_t d = 0; d < hd; ++d) out[d] += p * vc[j * hd + d];
          }
          if (req.output_attentions)
            std::copy_n(scores.data(), total, probs.ptr() + ((b * H + hh) * L + l) * total);
        }
      }
    }
    if (req.output_attentions) res.attentions.push_back(std::move(probs));
    // The residual adds happen in the projections' output pass (h += o(attn), h += down(.)).
    phase.reset();
    phase.emplace(Phase::kO);
    layer.o.Forward(attn.data(), rows, h.data(), residual);
    phase.reset();
    {
      PhaseScope t(Phase::kNorms);
      norm(h.data(), layer.post_norm.data(), eps, x.data(), rows, D);
    }
    {
      PhaseScope t(Phase::kGateUp);
      Linear::ForwardMany(x.data(), rows, {&layer.gate, &layer.up}, {g.data(), u.data()});
    }
    {
      PhaseScope t(Phase::kSiluMul);
      if (compute_ == ComputeType::kF32) {
        SiluInPlace(g.data(), rows * I);
        for (int64_t i = 0; i < rows * I; ++i) g[i] *= u[i];
      } else {
        ParallelSiluMulFast(g.data(), u.data(), rows * I);
      }
    }
    {
      PhaseScope t(Phase::kDown);
      layer.down.Forward(g.data(), rows, h.data(), residual);
    }
    if (req.output_hidden_states) {
      Tensor t({B, L, D});
      t.data = h;
      res.hidden_states.push_back(std::move(t));
    }
  }
  res.hidden = Tensor({B, L, D});
  {
    PhaseScope t(Phase::kNorms);
    norm(h.data(), norm_.data(), eps, res.hidden.ptr(), rows, D);
  }
  if (req.output_hidden_states) res.hidden_states.back().data = res.hidden.data;
  return res;
}

// Causal GQA attention of the new rows against the cache, without a full score matrix.
void LlamaDecoder::FusedAttentionLayer(const float* q, std::span<const CacheSlot> slots,
                                       int64_t layer, int64_t L, float* attn) const {
  const int64_t hd = cfg_.head_dim, H = cfg_.num_attention_heads, KV = cfg_.num_key_value_heads;
  const int64_t rep = H / KV, B = static_cast<int64_t>(slots.size());
  int64_t max_total = 0;
  for (const CacheSlot& s : slots) max_total = std::max(max_total, s.past + L);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool transpose = L >= 16;  // many queries: transposed keys make scoring a GEMM
  // One-token steps over a long bf16 cache: each KV head's keys in kDecodeParts calls (DecodePart)
  // merged after, so the threads share the work in smaller pieces (with one call per head, a
  // thread waited up to a head's time at each layer's end: 4-10 % of attention at 9472 tokens).
  // attention_bench BM_FusedAttentionDecodeFromMemory on the Xeon, split / whole: 0.87-0.98 at
  // 9472 keys (6 alternated pairs, each part's prefetches running on into the next part's keys;
  // 0.70-0.98 in 8 pairs before they did), 0.91-1.11 at 2048 (no gain; the cache is partly
  // L3-resident there). Measured with 4 heads per thread (B = 1); with many more tasks than
  // threads the balance is fine already, so no split.
  constexpr int64_t kDecodeParts = 2, kSplitKeys = 8192, kTasksPerThread = 4;
  bool split_ok = false;  // the decode kernel fills lse for this model's calls on this CPU
  if (L == 1 && B * KV <= kTasksPerThread * ThreadPool::Global().num_threads()) {
    for (const CacheSlot& s : slots) {
      if (s.cache->type() != KVType::kBF16) continue;
      AttentionArgs probe;  // the kind of call every bf16 slot's heads make
      probe.k16 = s.cache->k_bf16(layer, s.row, 0);
      probe.nq = rep;
      probe.hd = hd;
      probe.bf16 = true;
      split_ok = FillsLse(probe);
      break;
    }
  }
  auto parts_of = [&](const CacheSlot& s) {
    return split_ok && s.cache->type() == KVType::kBF16 && s.past + L >= kSplitKeys ? kDecodeParts
                                                                                    : int64_t{1};
  };
  int64_t parts = 1;
  for (const CacheSlot& s : slots) parts = std::max(parts, parts_of(s));
  // Parts p >= 1 write their rows and every part its log-sum-exps here ([B][KV][part][rep]).
  std::vector<float> part_out(parts > 1 ? static_cast<size_t>(B * KV * (parts - 1) * rep * hd) : 0);
  std::vector<float> part_lse(parts > 1 ? static_cast<size_t>(B * KV * parts * rep) : 0);
  auto body = [&](int64_t t0, int64_t t1) {
    std::vector<float> kt(transpose ? static_cast<size_t>(max_total * hd) : 0);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / (KV * parts), kh = t / parts % KV, part = t % parts;
      const CacheSlot& s = slots[b];
      const int64_t past = s.past, total = past + L;
      const bool c16 = s.cache->type() == KVType::kBF16;
      if (part > 0 && parts_of(s) == 1) continue;  // a slot whose keys are not split
      const float* kc = c16 ? nullptr : s.cache->k(layer, s.row, kh);
      const uint16_t* k16 = c16 ? s.cache->k_bf16(layer, s.row, kh) : nullptr;
      const uint16_t* v16 = c16 ? s.cache->v_bf16(layer, s.row, kh) : nullptr;
      if (c16 && L == 1) {
        // One new position: the `rep` query heads of this KV head are consecutive rows that all
        // see every cached key, so one call reads each key and value once for all of them.
        AttentionArgs a;
        a.q = q + (b * H + kh * rep) * hd;
        a.q_stride = hd;
        a.k16 = k16;
        a.v16 = v16;
        a.kv_stride = hd;
        a.out = attn + (b * H + kh * rep) * hd;
        a.out_stride = hd;
        a.nq = rep;
        a.nk = total;
        a.hd = hd;
        a.scale = scale;
        a.causal_offset = -1;
        a.valid = s.cache->valid_row(s.row);
        a.bf16 = true;
        if (parts_of(s) > 1) {
          const int64_t head = b * KV + kh;
          float* out =
              part == 0 ? a.out : part_out.data() + (head * (parts - 1) + part - 1) * rep * hd;
          FusedAttention(
              DecodePart(a, parts, part, out, part_lse.data() + (head * parts + part) * rep));
          continue;
        }
        FusedAttention(a);
        continue;
      }
      // The `rep` query heads of this KV head in one call: the bf16 kernel packs K/V once.
      AttentionArgs a;
      a.q = q + (b * L * H + kh * rep) * hd;
      a.q_stride = H * hd;
      a.k = kc;
      a.v = c16 ? nullptr : s.cache->v(layer, s.row, kh);
      a.k16 = k16;
      a.v16 = v16;
      a.kv_stride = hd;
      a.kt = transpose && !c16 ? kt.data() : nullptr;
      a.kt_stride = total;
      a.out = attn + (b * L * H + kh * rep) * hd;
      a.out_stride = H * hd;
      a.heads = rep;
      a.q_head_stride = hd;
      a.out_head_stride = hd;
      a.nq = L;
      a.nk = total;
      a.hd = hd;
      a.scale = scale;
      a.causal_offset = past;
      a.valid = s.cache->valid_row(s.row);
      a.bf16 = true;
      if (a.kt != nullptr && UsesBf16ManyQueryKernel(a)) a.kt = nullptr;  // packs its own layout
      if (a.kt != nullptr) TransposeKeys(kc, hd, total, hd, kt.data());
      FusedAttention(a);
    }
  };
  // Decode steps run no oneDNN GEMM: the ThreadPool (see core/parallel.h).
  if (L >= 16) {
    ParallelForOmp(B * KV * parts, body);
  } else {
    ThreadPool::Global().ParallelFor(B * KV * parts, body);
  }
  if (parts == 1) return;
  for (int64_t b = 0; b < B; ++b) {
    if (parts_of(slots[b]) == 1) continue;
    const int64_t total = slots[b].past + L;
    for (int64_t kh = 0; kh < KV; ++kh) {
      const int64_t head = b * KV + kh;
      float* out = attn + (b * H + kh * rep) * hd;
      const float* outs[kDecodeParts];
      const float* lses[kDecodeParts];
      int64_t keys[kDecodeParts];
      for (int64_t p = 0; p < parts; ++p) {
        outs[p] = p == 0 ? out : part_out.data() + (head * (parts - 1) + p - 1) * rep * hd;
        lses[p] = part_lse.data() + (head * parts + p) * rep;
        keys[p] = DecodeSplitPoint(total, parts, p + 1) - DecodeSplitPoint(total, parts, p);
      }
      MergeAttentionParts(parts, outs, lses, keys, rep, hd, out, hd);
    }
  }
}

void LlamaDecoder::Logits(const float* hidden, int64_t rows, float* logits) const {
  PhaseScope t(Phase::kLmHead);
  if (tied_) {
    GemmF32(hidden, embed_.data(), nullptr, logits, rows, cfg_.vocab_size, cfg_.hidden_size);
  } else {
    lm_head_.Forward(hidden, rows, logits);
  }
}

HeldBytes LlamaDecoder::held_bytes() const {
  HeldBytes h = embed_.held_bytes();
  h += norm_.held_bytes();
  h += lm_head_.held_bytes();
  // A bf16 LM head tied to the embeddings reads the same mapped table: count it once.
  const bool head_reads_table =
      embed_view_.data != nullptr &&
      static_cast<const void*>(lm_head_.bf16()) == static_cast<const void*>(embed_view_.data);
  if (embed_view_.data != nullptr && !head_reads_table) h.in_place += embed_view_.nbytes;
  for (const Layer& l : layers_) {
    h += l.input_norm.held_bytes();
    h += l.post_norm.held_bytes();
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) h += p->held_bytes();
  }
  return h;
}

size_t LlamaDecoder::DecodeWeightBytes() const {
  size_t n = 0;
  for (const Layer& l : layers_)
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      n += p->weight_bytes();
  if (tied_) {
    n += static_cast<size_t>(cfg_.vocab_size * cfg_.hidden_size) * 4;
  } else {
    n += lm_head_.weight_bytes();
  }
  return n;
}

}  // namespace plm
