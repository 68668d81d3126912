#include "model/projector.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "core/parallel.h"
#include "plm/error.h"

namespace plm {

Projector::Projector(const PerceptionLMConfig& cfg, const LoadOptions& options, WeightStore& ws,
                     const std::string& p)
    : pooling_ratio_(cfg.projector_pooling_ratio), drop_cls_(cfg.vision_use_cls_token) {
  const int64_t dv = cfg.vision.embed_dim, dt = cfg.text.hidden_size;
  const ComputeType ct = ws.EffectiveCompute(options.compute);
  reduced_ = ct != ComputeType::kF32;
  linear_1_ = LoadLinear(ws, p + "linear_1.weight", dt, dv, p + "linear_1.bias", ct);
  linear_2_ = LoadLinear(ws, p + "linear_2.weight", dt, dt, p + "linear_2.bias", ct);
  linear_1_.Pack();  // int8: the blocked layout (small matrices, packed at load)
  linear_2_.Pack();
}

namespace {

// Output row i of AdaptiveAvgPool2d (rows are independent).
void AdaptiveAvgPool2dRow(const float* x, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
                          int64_t i, float* y) {
  const int64_t h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh;
  for (int64_t j = 0; j < ow; ++j) {
    const int64_t w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
    float* out = y + (i * ow + j) * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      double sum = 0;
      for (int64_t r = h0; r < h1; ++r)
        for (int64_t q = w0; q < w1; ++q) sum += x[(r * w + q) * c + ch];
      out[ch] = static_cast<float>(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
    }
  }
}

}  // namespace

void AdaptiveAvgPool2d(const float* x, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
                       float* y) {
  for (int64_t i = 0; i < oh; ++i) AdaptiveAvgPool2dRow(x, h, w, c, oh, ow, i, y);
}

Tensor Projector::Forward(const Tensor& vision) const {
  const int64_t n = vision.dim(0), T = vision.dim(1), dv = vision.dim(2);
  const int64_t skip = drop_cls_ ? 1 : 0, N = T - skip, dt = linear_2_.out_features();
  int64_t side = 0, out_side = 0, out_tokens = N;
  if (pooling_ratio_ > 1) {
    side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(N))));
    if (side * side != N)
      throw Error(ErrorCode::kInvalidArgument, "projector pooling needs a square token grid, got " +
                                                   std::to_string(N) + " tokens");
    out_side = side / pooling_ratio_;
    out_tokens = out_side * out_side;
  }
  Tensor out({n, out_tokens, dt});
  std::vector<float> h1(N * dt), h2(N * dt);
  for (int64_t t = 0; t < n; ++t) {
    const float* x = vision.ptr() + (t * T + skip) * dv;
    if (reduced_) {
      GemmEpilogue gelu;
      gelu.kind = GemmEpilogue::Kind::kGelu;
      linear_1_.Forward(x, N, h1.data(), gelu);
    } else {
      linear_1_.Forward(x, N, h1.data());
      GeluErfInPlace(h1.data(), N * dt);
    }
    linear_2_.Forward(h1.data(), N, h2.data());
    float* dst = out.ptr() + t * out_tokens * dt;
    if (pooling_ratio_ > 1 && reduced_) {
      // Output rows are independent: split them over the threads (the same sums per row).
      ParallelForOmp(out_side, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i)
          AdaptiveAvgPool2dRow(h2.data(), side, side, dt, out_side, out_side, i, dst);
      });
    } else if (pooling_ratio_ > 1) {
      AdaptiveAvgPool2d(h2.data(), side, side, dt, out_side, out_side, dst);
    } else {
      std::copy(h2.begin(), h2.end(), dst);
    }
  }
  return out;
}

}  // namespace plm
