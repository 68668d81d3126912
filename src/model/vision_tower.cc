#include "model/vision_tower.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/attention.h"
#include "core/layer_norm_fast.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/rotate_pairs.h"
#include "core/thread_pool.h"
#include "plm/error.h"

namespace plm {

namespace {

F32Weights Load(WeightStore& ws, const std::string& name, const std::vector<int64_t>& shape) {
  return F32Weights(ws.Get(name, shape));
}

LinearSource FindBlockLinear(WeightStore& ws, const std::string& name, int64_t out, int64_t in,
                             bool bias, ComputeType compute) {
  return FindLinear(ws, name + ".weight", out, in, bias ? name + ".bias" : "", compute);
}

}  // namespace

VisionTower::VisionTower(const VisionConfig& cfg, const LoadOptions& options, WeightStore& ws,
                         const std::string& p)
    // 4-bit is for the bandwidth-bound decoder; the compute-bound tower uses int8 then.
    : cfg_(cfg),
      compute_(ws.EffectiveCompute(options.compute) == ComputeType::kQ4
                   ? ComputeType::kQ8
                   : ws.EffectiveCompute(options.compute)) {
  const int64_t D = cfg.embed_dim, ps = cfg.patch_size, N = cfg.num_patches();
  const int64_t prefix = cfg.num_prefix_tokens(), hidden = cfg.mlp_hidden();
  patch_w_ = Load(ws, p + "patch_embed.proj.weight", {D, 3, ps, ps});
  // timm's PatchEmbed has a bias only when there is no pre-transformer norm.
  if (!cfg.use_pre_transformer_norm) patch_b_ = Load(ws, p + "patch_embed.proj.bias", {D});
  if (cfg.class_token) cls_ = Load(ws, p + "cls_token", {1, 1, D});
  pos_ = Load(ws, p + "pos_embed", {1, prefix + N, D});
  if (cfg.use_pre_transformer_norm) {
    norm_pre_w_ = Load(ws, p + "norm_pre.weight", {D});
    norm_pre_b_ = Load(ws, p + "norm_pre.bias", {D});
  }
  for (int64_t i = 0; i < cfg.depth; ++i) {
    const std::string b = p + "blocks." + std::to_string(i) + ".";
    Block blk;
    blk.norm1_w = Load(ws, b + "norm1.weight", {D});
    blk.norm1_b = Load(ws, b + "norm1.bias", {D});
    blk.norm2_w = Load(ws, b + "norm2.weight", {D});
    blk.norm2_b = Load(ws, b + "norm2.bias", {D});
    blk.sources = {FindBlockLinear(ws, b + "attn.qkv", 3 * D, D, cfg.qkv_bias, compute_),
                   FindBlockLinear(ws, b + "attn.proj", D, D, true, compute_),
                   FindBlockLinear(ws, b + "mlp.fc1", hidden, D, true, compute_),
                   FindBlockLinear(ws, b + "mlp.fc2", D, hidden, true, compute_)};
    // Stored quantized: used in place, nothing to defer.
    for (size_t i = 0; i < blk.sources.size(); ++i)
      if (blk.sources[i].quantized) {
        *blk.linears()[i] = blk.sources[i].Build();
        blk.sources[i] = {};
      }
    if (cfg.init_values > 0) {
      blk.gamma_1 = Load(ws, b + "gamma_1", {D});
      blk.gamma_2 = Load(ws, b + "gamma_2", {D});
    }
    blocks_.push_back(std::move(blk));
  }
  if (cfg.use_post_transformer_norm) {
    norm_w_ = Load(ws, p + "norm.weight", {D});
    norm_b_ = Load(ws, p + "norm.bias", {D});
  }

  // 2D RoPE tables (timm RotaryEmbeddingCat, in_pixels=False), float32 like the reference:
  // band[i] = 1 / T^(i/nb); coordinate = (index + offset) / grid * ref_grid; pairs 0..nb-1 take
  // the first axis of the indexing ('xy': column), pairs nb..2nb-1 the second.
  const int64_t hd = cfg.head_dim(), nb = hd / 4, gh = cfg.grid_h(), gw = cfg.grid_w();
  std::vector<float> band(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i) {
    const float e = static_cast<float>(i) / static_cast<float>(nb);
    band[i] = 1.0f / std::pow(static_cast<float>(cfg.rope_temperature), e);
  }
  auto coord = [&](int64_t idx, int64_t grid, int64_t ref) {
    float c = static_cast<float>(idx) + static_cast<float>(cfg.rope_grid_offset);
    if (ref > 0) c = c / static_cast<float>(grid) * static_cast<float>(ref);
    return c;
  };
  const bool xy = cfg.rope_grid_indexing == "xy";
  std::vector<float> cos_k(static_cast<size_t>(hd / 2)), sin_k(cos_k.size());
  rope_cos2_.resize(static_cast<size_t>(N * hd));
  rope_sin2_.resize(rope_cos2_.size());
  for (int64_t r = 0; r < gh; ++r) {
    for (int64_t c = 0; c < gw; ++c) {
      const int64_t n = r * gw + c;
      const float x = coord(c, gw, cfg.ref_feat_w), y = coord(r, gh, cfg.ref_feat_h);
      const float first = xy ? x : y, second = xy ? y : x;
      for (int64_t k = 0; k < hd / 2; ++k) {
        const float theta = k < nb ? first * band[k] : second * band[k - nb];
        cos_k[k] = static_cast<float>(std::cos(static_cast<double>(theta)));
        sin_k[k] = static_cast<float>(std::sin(static_cast<double>(theta)));
      }
      RotationTables(cos_k.data(), sin_k.data(), hd / 2, rope_cos2_.data() + n * hd,
                     rope_sin2_.data() + n * hd);
    }
  }
}

void VisionTower::ApplyRope(float* x) const {
  const int64_t hd = cfg_.head_dim(), N = cfg_.num_patches();
  for (int64_t n = 0; n < N; ++n) RopeRow(x + n * hd, n, x + n * hd);
}

void VisionTower::RopeRow(const float* u, int64_t patch, float* v) const {
  const int64_t hd = cfg_.head_dim();
  RotatePairs(u, rope_cos2_.data() + patch * hd, rope_sin2_.data() + patch * hd, hd, v);
}

// Fused attention (reduced-precision paths): heads in parallel, scores a few rows at a time.
void VisionTower::FusedAttentionTile(const float* qkv, float* out) const {
  const int64_t D = cfg_.embed_dim, H = cfg_.num_heads, hd = cfg_.head_dim();
  const int64_t T = tokens_per_tile(), prefix = cfg_.num_prefix_tokens();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ParallelForOmp(H, [&](int64_t h0, int64_t h1) {
    // Per thread, reused across layers and tiles (every element is written before it is read).
    thread_local std::vector<float> q, k, v, kt;  // kt only for kernels that read it
    q.resize(static_cast<size_t>(T * hd));
    k.resize(q.size());
    v.resize(q.size());
    for (int64_t h = h0; h < h1; ++h) {
      // The head's queries and keys rotated (prefix tokens unrotated) and its values copied out
      // of qkv in one pass, into rows of their own. qkv's rows are 3D floats apart, a stride
      // the hardware prefetchers do not follow, so the rows a few tokens ahead are requested
      // meanwhile (otherwise each row waits for its lines from L3, ~1/8 of the attention time).
      constexpr int64_t kAhead = 8;
      const float* base = qkv + h * hd;
      for (int64_t t = 0; t < T; ++t) {
        if (t + kAhead < T)
          for (int64_t part = 0; part < 3; ++part)
            for (int64_t off = 0; off < hd; off += 16)
              __builtin_prefetch(base + (t + kAhead) * 3 * D + part * D + off);
        const float* row = base + t * 3 * D;
        if (t < prefix) {
          std::memcpy(q.data() + t * hd, row, sizeof(float) * hd);
          std::memcpy(k.data() + t * hd, row + D, sizeof(float) * hd);
        } else {
          RopeRow(row, t - prefix, q.data() + t * hd);
          RopeRow(row + D, t - prefix, k.data() + t * hd);
        }
        std::memcpy(v.data() + t * hd, row + 2 * D, sizeof(float) * hd);
      }
      AttentionArgs a;
      a.q = q.data();
      a.q_stride = hd;
      a.k = k.data();
      a.v = v.data();
      a.kv_stride = hd;
      a.kt_stride = T;
      a.out = out + h * hd;
      a.out_stride = D;
      a.nq = T;
      a.nk = T;
      a.hd = hd;
      a.scale = scale;
      a.bf16 = true;
      a.int8_scores = compute_ == ComputeType::kQ8;  // the int8 tower: int8 scores too
      if (!UsesBf16ManyQueryKernel(a)) {             // that kernel packs its own key layout
        kt.resize(static_cast<size_t>(T * hd));
        a.kt = kt.data();
        TransposeKeys(k.data(), hd, T, hd, kt.data());
      }
      FusedAttention(a);
    }
  });
}

// Bidirectional multi-head attention over one tile; qkv: [T, 3D]; out: [T, D].
void VisionTower::Attention(const float* qkv, float* out) const {
  if (compute_ != ComputeType::kF32) {
    FusedAttentionTile(qkv, out);
    return;
  }
  const int64_t D = cfg_.embed_dim, H = cfg_.num_heads, hd = cfg_.head_dim();
  const int64_t T = tokens_per_tile(), prefix = cfg_.num_prefix_tokens();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> q(T * hd), k(T * hd), v(T * hd), s(T * T), o(T * hd);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t t = 0; t < T; ++t) {
      const float* row = qkv + t * 3 * D + h * hd;
      std::copy(row, row + hd, q.data() + t * hd);
      std::copy(row + D, row + D + hd, k.data() + t * hd);
      std::copy(row + 2 * D, row + 2 * D + hd, v.data() + t * hd);
    }
    // Prefix (class) tokens are not rotated.
    ApplyRope(q.data() + prefix * hd);
    ApplyRope(k.data() + prefix * hd);
    GemmF32(q.data(), k.data(), nullptr, s.data(), T, T, hd);
    for (int64_t t = 0; t < T; ++t) {
      float* row = s.data() + t * T;
      for (int64_t j = 0; j < T; ++j) row[j] *= scale;
      SoftmaxInPlace(row, T);
    }
    GemmF32NN(s.data(), v.data(), o.data(), T, hd, T);
    for (int64_t t = 0; t < T; ++t)
      std::copy(o.data() + t * hd, o.data() + (t + 1) * hd, out + t * D + h * hd);
  }
}

void VisionTower::ForwardTile(const float* pixels, float* z, std::vector<Tensor>* block_outputs,
                              int64_t tile, int64_t n_tiles, Scratch& scratch) const {
  const int64_t D = cfg_.embed_dim, ps = cfg_.patch_size, gh = cfg_.grid_h(), gw = cfg_.grid_w();
  const int64_t N = gh * gw, prefix = cfg_.num_prefix_tokens(), T = prefix + N;
  const int64_t H = cfg_.img_height, W = cfg_.img_width, K = 3 * ps * ps;

  // Patch embedding as a GEMM over unfolded patches in (channel, ky, kx) order = conv weight order.
  float* cols = scratch.cols.get();
  for (int64_t r = 0; r < gh; ++r)
    for (int64_t c = 0; c < gw; ++c) {
      float* dst = cols + (r * gw + c) * K;
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t ky = 0; ky < ps; ++ky) {
          const float* src = pixels + (ch * H + r * ps + ky) * W + c * ps;
          std::copy(src, src + ps, dst + (ch * ps + ky) * ps);
        }
    }
  // The reduced-precision paths keep to the OpenMP team (see GemmF32Omp).
  (compute_ == ComputeType::kF32 ? GemmF32 : GemmF32Omp)(
      cols, patch_w_.data(), patch_b_.empty() ? nullptr : patch_b_.data(), z + prefix * D, N, D, K);
  if (prefix) std::copy(cls_.begin(), cls_.end(), z);
  for (int64_t i = 0; i < T * D; ++i) z[i] += pos_[i];
  if (cfg_.use_pre_transformer_norm)
    LayerNorm(z, norm_pre_w_.data(), norm_pre_b_.data(), 1e-5f, z, T, D);

  const float eps = static_cast<float>(cfg_.layer_norm_eps);
  const int64_t hidden = cfg_.mlp_hidden();
  float* const a = scratch.a.get();
  float* const qkv = scratch.qkv.get();
  float* const attn = scratch.attn.get();
  float* const m = scratch.m.get();
  const bool par = compute_ != ComputeType::kF32;
  auto norm = [&](const float* x, const F32Weights& w, const F32Weights& bias, float* y) {
    LayerNorm(x, w.data(), bias.data(), eps, y, T, D);  // f32 path: serial loops
  };
  auto residual = [&](float* zz, const float* add, const F32Weights& gamma) {  // f32 path
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d)
        zz[t * D + d] += (gamma.empty() ? 1.0f : gamma[d]) * add[t * D + d];
  };
  // Reduced-precision paths: GELU and the LayerScale residuals happen in the GEMMs' output pass.
  auto add_scaled = [](const F32Weights& gamma) {
    GemmEpilogue ep;
    ep.kind = GemmEpilogue::Kind::kAddScaled;
    ep.gamma = gamma.empty() ? nullptr : gamma.data();
    return ep;
  };
  GemmEpilogue gelu;
  gelu.kind = GemmEpilogue::Kind::kGelu;
  // Reduced-precision paths: the LayerNorms' rows are made by the next GEMM (ForwardMade: the
  // int8 tower quantizes each few rows while they are in cache; `a` is the scratch elsewhere).
  auto norm_rows = [&](const F32Weights& w, const F32Weights& bias) {
    return [z, &w, &bias, eps, D](int64_t r0, int64_t r1, float* out) {
      LayerNormFast(z + r0 * D, w.data(), bias.data(), eps, out, r1 - r0, D);
    };
  };
  for (size_t bi = 0; bi < blocks_.size(); ++bi) {
    const Block& b = blocks_[bi];
    if (par) {
      b.qkv.ForwardMade(norm_rows(b.norm1_w, b.norm1_b), T, qkv, a);
    } else {
      norm(z, b.norm1_w, b.norm1_b, a);
      b.qkv.Forward(a, T, qkv);
    }
    Attention(qkv, attn);
    if (par) {
      b.proj.Forward(attn, T, z, add_scaled(b.gamma_1));
    } else {
      b.proj.Forward(attn, T, a);
      residual(z, a, b.gamma_1);
    }
    if (par) {
      b.fc1.ForwardMade(norm_rows(b.norm2_w, b.norm2_b), T, m, a, gelu);
      b.fc2.Forward(m, T, z, add_scaled(b.gamma_2));
    } else {
      norm(z, b.norm2_w, b.norm2_b, a);
      b.fc1.Forward(a, T, m);
      GeluErfInPlace(m, T * hidden);
      b.fc2.Forward(m, T, a);
      residual(z, a, b.gamma_2);
    }
    if (block_outputs != nullptr) {
      Tensor& out = (*block_outputs)[bi];
      if (out.shape.empty()) out = Tensor({n_tiles, D, gh, gw});
      float* dst = out.ptr() + tile * D * N;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) dst[d * N + n] = z[(prefix + n) * D + d];
    }
  }
  if (cfg_.use_post_transformer_norm) LayerNorm(z, norm_w_.data(), norm_b_.data(), eps, z, T, D);
}

HeldBytes VisionTower::held_bytes() const {
  HeldBytes h;
  for (const F32Weights* w :
       {&patch_w_, &patch_b_, &cls_, &pos_, &norm_pre_w_, &norm_pre_b_, &norm_w_, &norm_b_})
    h += w->held_bytes();
  for (const Block& b : blocks_) {
    for (const F32Weights* w :
         {&b.norm1_w, &b.norm1_b, &b.norm2_w, &b.norm2_b, &b.gamma_1, &b.gamma_2})
      h += w->held_bytes();
    for (size_t i = 0; i < b.sources.size(); ++i) {
      const LinearSource& src = b.sources[i];
      if (src.weight == nullptr) {
        h += b.linears()[i]->held_bytes();
      } else {  // not built yet: the checkpoint's bytes, in place
        h.in_place += src.weight->nbytes + (src.bias != nullptr ? src.bias->nbytes : 0);
      }
    }
  }
  return h;
}

void VisionTower::Prepare() const {
  // The block matrices are converted (bf16 / int8 from what the checkpoint stores) on the first
  // image, so text-only use never holds them, and packed: GEMMs of one tile's tokens from packed
  // bf16/int8 weights are 10-25 % faster; the plain rows are dropped. Other callers wait here
  // until it is done.
  std::call_once(prepared_, [&] {
    for (const Block& cb : blocks_) {
      auto& b = const_cast<Block&>(cb);
      for (size_t i = 0; i < b.sources.size(); ++i) {
        Linear* l = b.linears()[i];
        if (b.sources[i].weight != nullptr) *l = b.sources[i].Build();
        b.sources[i] = {};
        l->Pack();
      }
    }
  });
}

Tensor VisionTower::Forward(const float* pixels, int64_t n_tiles,
                            std::vector<Tensor>* block_outputs,
                            const std::function<void(int64_t, int64_t)>& on_tile) const {
  const int64_t T = tokens_per_tile(), D = cfg_.embed_dim;
  const int64_t tile_elems = 3 * cfg_.img_height * cfg_.img_width;
  Prepare();
  Tensor out({n_tiles, T, D});
  if (block_outputs != nullptr) block_outputs->assign(blocks_.size(), Tensor());
  const int64_t ps = cfg_.patch_size, N = cfg_.num_patches();
  Scratch scratch;
  scratch.cols.reset(new float[static_cast<size_t>(N * 3 * ps * ps)]);
  scratch.a.reset(new float[static_cast<size_t>(T * D)]);
  scratch.qkv.reset(new float[static_cast<size_t>(T * 3 * D)]);
  scratch.attn.reset(new float[static_cast<size_t>(T * D)]);
  scratch.m.reset(new float[static_cast<size_t>(T * cfg_.mlp_hidden())]);
  for (int64_t t = 0; t < n_tiles; ++t) {
    ForwardTile(pixels + t * tile_elems, out.ptr() + t * T * D, block_outputs, t, n_tiles, scratch);
    if (on_tile) on_tile(t + 1, n_tiles);
  }
  return out;
}

}  // namespace plm
