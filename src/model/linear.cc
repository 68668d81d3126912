#include "model/linear.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "core/ops.h"

namespace plm {

namespace {

// Converts rows [r0, r1) of `t` to float32.
void RowsToF32(const TensorView& t, int64_t r0, int64_t r1, float* dst) {
  const int64_t k = t.shape.at(1);
  const size_t es = DTypeSize(t.dtype);
  ConvertToF32(t.dtype, t.data + static_cast<size_t>(r0 * k) * es, dst,
               static_cast<size_t>((r1 - r0) * k));
}

constexpr int64_t kChunkRows = 1024;  // bounds the f32 temporary while quantizing

// After converting a tensor, lets the kernel drop its pages of the (read-only) checkpoint
// mapping so they stop counting in the resident set; a later read faults them back in.
void ReleasePages(const TensorView& t) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto b = reinterpret_cast<uintptr_t>(t.data), e = b + t.nbytes;
  const uintptr_t pb = (b + page - 1) / page * page, pe = e / page * page;
  if (pe > pb) ::madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_DONTNEED);
}

}  // namespace

Linear::Linear(const TensorView& weight, const TensorView* bias, ComputeType compute)
    : in_(weight.shape.at(1)), out_(weight.shape.at(0)), compute_(compute) {
  if (bias != nullptr) b_ = F32Weights(*bias);
  switch (compute) {
    case ComputeType::kF32:
      w_ = F32Weights(weight);
      break;
    case ComputeType::kBF16:
      if (weight.dtype == DType::kBF16 && reinterpret_cast<uintptr_t>(weight.data) % 2 == 0) {
        bf16_ = reinterpret_cast<const uint16_t*>(weight.data);
      } else {
        bf16_owned_.resize(static_cast<size_t>(out_ * in_));
        std::vector<float> tmp(static_cast<size_t>(std::min(out_, kChunkRows) * in_));
        for (int64_t r0 = 0; r0 < out_; r0 += kChunkRows) {
          const int64_t r1 = std::min(out_, r0 + kChunkRows);
          RowsToF32(weight, r0, r1, tmp.data());
          for (int64_t i = 0; i < (r1 - r0) * in_; ++i)
            bf16_owned_[r0 * in_ + i] = F32ToBf16(tmp[i]);
        }
        bf16_ = bf16_owned_.data();
        ReleasePages(weight);
      }
      break;
    case ComputeType::kQ8: {
      auto q = std::make_shared<Q8Matrix>();
      q->n = out_;
      q->k = in_;
      q->q.resize(static_cast<size_t>(out_ * in_));
      q->scale.resize(static_cast<size_t>(out_));
      std::vector<float> tmp(static_cast<size_t>(std::min(out_, kChunkRows) * in_));
      for (int64_t r0 = 0; r0 < out_; r0 += kChunkRows) {
        const int64_t r1 = std::min(out_, r0 + kChunkRows);
        RowsToF32(weight, r0, r1, tmp.data());
        Q8Matrix part = QuantizeQ8(tmp.data(), r1 - r0, in_);
        std::copy(part.q.begin(), part.q.end(), q->q.begin() + r0 * in_);
        std::copy(part.scale.begin(), part.scale.end(), q->scale.begin() + r0);
      }
      FinishQ8(q.get());
      q8_ = std::move(q);
      ReleasePages(weight);
      break;
    }
    case ComputeType::kQ4: {
      if (in_ % 64 != 0) {  // not representable: keep int8
        compute_ = ComputeType::kQ8;
        *this = Linear(weight, bias, ComputeType::kQ8);
        return;
      }
      std::vector<float> tmp(static_cast<size_t>(std::min(out_, kChunkRows) * in_));
      auto q = std::make_shared<Q4Matrix>();
      q->n = out_;
      q->k = in_;
      q->expanded.n = out_;
      q->expanded.k = in_;
      for (int64_t r0 = 0; r0 < out_; r0 += kChunkRows) {
        const int64_t r1 = std::min(out_, r0 + kChunkRows);
        RowsToF32(weight, r0, r1, tmp.data());
        Q4Matrix part = QuantizeQ4(tmp.data(), r1 - r0, in_);
        q->q.insert(q->q.end(), part.q.begin(), part.q.end());
        q->scale.insert(q->scale.end(), part.scale.begin(), part.scale.end());
        q->comp.insert(q->comp.end(), part.comp.begin(), part.comp.end());
        q->expanded.q.insert(q->expanded.q.end(), part.expanded.q.begin(), part.expanded.q.end());
        q->expanded.scale.insert(q->expanded.scale.end(), part.expanded.scale.begin(),
                                 part.expanded.scale.end());
      }
      FinishQ8(&q->expanded);
      q4_ = std::move(q);
      ReleasePages(weight);
      break;
    }
  }
}

void Linear::Forward(const float* x, int64_t rows, float* y) const {
  const float* bias = b_.empty() ? nullptr : b_.data();
  switch (compute_) {
    case ComputeType::kF32:
      GemmF32(x, w_.data(), bias, y, rows, out_, in_);
      return;
    case ComputeType::kBF16:
      GemmBF16(x, bf16_, bias, y, rows, out_, in_);
      return;
    case ComputeType::kQ8:
      GemmQ8(x, *q8_, bias, y, rows);
      return;
    case ComputeType::kQ4:
      GemmQ4(x, *q4_, bias, y, rows);
      return;
  }
}

size_t Linear::weight_bytes() const {
  const size_t n = static_cast<size_t>(out_ * in_);
  switch (compute_) {
    case ComputeType::kF32:
      return n * 4;
    case ComputeType::kBF16:
      return n * 2;
    case ComputeType::kQ8:
      return q8_->q.size() + q8_->scale.size() * 4;
    case ComputeType::kQ4:
      return q4_->q.size() + q4_->scale.size() * 4;
  }
  return 0;
}

}  // namespace plm
