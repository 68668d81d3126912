// A dense, row-major, owning float32 tensor: the activation type of the reference path.
//
//   plm::ForwardOutputs out = model->Forward(inputs);
//   const plm::Tensor& l = out.logits;              // shape {batch, kept positions, vocab}
//   float x = l.data[(b * l.dim(1) + i) * l.dim(2) + v];
//   std::printf("%s\n", l.ShapeString().c_str());
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace plm {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s)
      : shape(std::move(s)), data(static_cast<size_t>(Numel(shape)), 0.0f) {}

  static int64_t Numel(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t dim(int i) const {
    return shape[static_cast<size_t>(i < 0 ? static_cast<int>(shape.size()) + i : i)];
  }
  int rank() const { return static_cast<int>(shape.size()); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  std::string ShapeString() const;
};

}  // namespace plm
