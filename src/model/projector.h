// PerceptionLM multimodal projector (plm-spec.md §6): drop the class row, Linear → GELU(erf) →
// Linear, then adaptive average pooling of the square token grid by `projector_pooling_ratio`.
// The reduced-precision paths use GeluFast (as the vision tower does) fused into linear_1.
#pragma once

#include <string>

#include "model/linear.h"
#include "model/weight_store.h"
#include "plm/config.h"
#include "plm/model.h"
#include "plm/tensor.h"

namespace plm {

class Projector {
 public:
  Projector(const PerceptionLMConfig& cfg, const LoadOptions& options, WeightStore& weights,
            const std::string& prefix);

  // vision: [n_tiles, T, D_vision] (T includes the class row when the tower has one).
  // Returns [n_tiles, tokens_per_tile, D_text].
  Tensor Forward(const Tensor& vision) const;
  HeldBytes held_bytes() const {
    HeldBytes h = linear_1_.held_bytes();
    h += linear_2_.held_bytes();
    return h;
  }

 private:
  int64_t pooling_ratio_;
  bool drop_cls_;
  bool reduced_;  // bf16/q8/q4: GeluFast fused into linear_1's output pass, row-parallel pooling
  Linear linear_1_, linear_2_;
};

// PyTorch adaptive_avg_pool2d over a channels-last grid: x [h, w, c] → y [oh, ow, c], windows
// [floor(i*h/oh), ceil((i+1)*h/oh)) that may overlap when sizes do not divide.
void AdaptiveAvgPool2d(const float* x, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
                       float* y);

}  // namespace plm
