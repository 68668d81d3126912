#include "model/linear.h"

#include <algorithm>

#include "core/mapped_file.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "plm/error.h"

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

// After converting a tensor, its pages of the (read-only) checkpoint mapping stop counting in the
// resident set.
void ReleasePages(const TensorView& t) {
  ::plm::ReleasePages(t.data, t.nbytes);
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
      q->Allocate(out_, in_);
      std::vector<float> tmp(static_cast<size_t>(std::min(out_, kChunkRows) * in_));
      for (int64_t r0 = 0; r0 < out_; r0 += kChunkRows) {
        const int64_t r1 = std::min(out_, r0 + kChunkRows);
        RowsToF32(weight, r0, r1, tmp.data());
        QuantizeQ8Rows(tmp.data(), r1 - r0, in_, q->q_own.data() + r0 * in_,
                       q->scale_own.data() + r0, q->sum_own.data() + r0);
      }
      q8_ = std::move(q);
      ReleasePages(weight);
      break;
    }
    case ComputeType::kQ4: {
      if (in_ % 64 != 0) {  // not representable: keep int8
        *this = Linear(weight, bias, ComputeType::kQ8);
        return;
      }
      auto q = std::make_shared<Q4Matrix>();
      q->Allocate(out_, in_);
      std::vector<float> tmp(static_cast<size_t>(std::min(out_, kChunkRows) * in_));
      for (int64_t r0 = 0; r0 < out_; r0 += kChunkRows) {
        const int64_t r1 = std::min(out_, r0 + kChunkRows);
        RowsToF32(weight, r0, r1, tmp.data());
        QuantizeQ4Rows(tmp.data(), r1 - r0, in_, q->q_own.data() + r0 * (in_ / 2),
                       q->scale_own.data() + r0 * (in_ / kQ4Block), q->comp_own.data() + r0);
      }
      q4_ = std::move(q);
      ReleasePages(weight);
      break;
    }
  }
}

Linear::Linear(const QuantizedWeight& w, const TensorView* bias)
    : in_(w.k), out_(w.n), compute_(w.format) {
  if (bias != nullptr) b_ = F32Weights(*bias);
  if (w.format == ComputeType::kQ8) {
    auto q = std::make_shared<Q8Matrix>();
    q->n = w.n;
    q->k = w.k;
    q->scale = static_cast<const float*>(w.scale);
    q->sum = static_cast<const int32_t*>(w.aux);
    if (!w.blocked) {
      q->q = static_cast<const int8_t*>(w.q);
    } else if (!UseBlockedQ8(q.get(), static_cast<const int8_t*>(w.q))) {
      // No AVX512-VNNI here: the plain rows the portable kernels read, rebuilt once.
      q->q_own.resize(static_cast<size_t>(w.n * w.k));
      UnblockQ8(static_cast<const int8_t*>(w.q), w.n, w.k, q->q_own.data());
      q->q = q->q_own.data();
      ReleasePages(w.q, static_cast<size_t>(Q8BlockedBytes(w.n, w.k)));
    }
    q8_ = std::move(q);
  } else if (w.format == ComputeType::kQ4) {
    auto q = std::make_shared<Q4Matrix>();
    q->n = w.n;
    q->k = w.k;
    q->comp = static_cast<const float*>(w.aux);
    if (!w.blocked) {
      q->q = static_cast<const uint8_t*>(w.q);
      q->scale = static_cast<const uint16_t*>(w.scale);
    } else if (!UseBlockedQ4(q.get(), static_cast<const uint8_t*>(w.q))) {
      // No AVX512-VNNI here: the rows the portable kernels read, rebuilt once.
      q->q_own.resize(static_cast<size_t>(w.n * w.k / 2));
      q->scale_own.resize(static_cast<size_t>(w.n * (w.k / kQ4Block)));
      UnblockQ4(static_cast<const uint8_t*>(w.q), w.n, w.k, q->q_own.data(), q->scale_own.data());
      q->q = q->q_own.data();
      q->scale = q->scale_own.data();
      ReleasePages(w.q, static_cast<size_t>(Q4BlockedBytes(w.n, w.k)));
    }
    q4_ = std::move(q);
  } else if (w.format == ComputeType::kBF16 && w.blocked) {
    const auto* blocked = static_cast<const uint16_t*>(w.q);
    bf16_packed_ = UseBlockedBf16(blocked, w.n, w.k);
    if (bf16_packed_ == nullptr) {
      // No AVX512-BF16 here: the rows the other kernels read, rebuilt once.
      bf16_owned_.resize(static_cast<size_t>(w.n * w.k));
      UnblockBf16(blocked, w.n, w.k, bf16_owned_.data());
      bf16_ = bf16_owned_.data();
      ReleasePages(w.q, static_cast<size_t>(Bf16BlockedBytes(w.n, w.k)));
    }
  } else {
    throw Error(ErrorCode::kInternal, "Linear: stored weight of an unknown layout");
  }
}

bool Linear::Pack() {
  if (compute_ == ComputeType::kBF16 && bf16_ != nullptr) {
    bf16_packed_ = PackBf16(bf16_, out_, in_);
    if (bf16_packed_ == nullptr) return false;
    if (bf16_owned_.empty()) {
      ReleasePages(bf16_, static_cast<size_t>(out_ * in_ * 2));
    } else {
      std::vector<uint16_t>().swap(bf16_owned_);
    }
    bf16_ = nullptr;
    return true;
  }
  if (compute_ == ComputeType::kQ4 && q4_ != nullptr) {
    const uint8_t* plain = q4_->q;
    const uint16_t* scales = q4_->scale;
    const bool mapped = q4_->q_own.empty();
    if (!PackQ4(q4_.get())) return false;
    if (mapped) {
      ReleasePages(plain, static_cast<size_t>(out_ * in_ / 2));
      ReleasePages(scales, static_cast<size_t>(out_ * (in_ / kQ4Block) * 2));
    }
    return true;
  }
  if (compute_ != ComputeType::kQ8 || q8_ == nullptr) return false;
  const int8_t* plain = q8_->q;
  const bool mapped = q8_->q_own.empty();
  if (!PackQ8(q8_.get())) return false;
  if (mapped) ReleasePages(plain, static_cast<size_t>(out_ * in_));
  return true;
}

void Linear::Forward(const float* x, int64_t rows, float* y, const GemmEpilogue& ep) const {
  const float* bias = b_.empty() ? nullptr : b_.data();
  switch (compute_) {
    case ComputeType::kQ8:
      GemmQ8(x, *q8_, bias, y, rows, ep);
      return;
    case ComputeType::kQ4:
      GemmQ4(x, *q4_, bias, y, rows, ep);
      return;
    case ComputeType::kF32:
    case ComputeType::kBF16:
      break;
  }
  // f32 / bf16: the GEMM (with bias) into y, or into scratch when it accumulates into y, then
  // the epilogue as a row-parallel pass.
  float* out = y;
  if (ep.kind == GemmEpilogue::Kind::kAddScaled) {
    thread_local std::vector<float> scratch;  // reused: a prefill slice's is 8 MB
    if (scratch.size() < static_cast<size_t>(rows * out_)) scratch.resize(rows * out_);
    out = scratch.data();
  }
  if (compute_ == ComputeType::kF32) {
    GemmF32(x, w_.data(), bias, out, rows, out_, in_);
  } else if (bf16_packed_ != nullptr) {
    GemmBF16Packed(x, *bf16_packed_, bias, out, rows);
  } else {
    GemmBF16(x, bf16_, bias, out, rows, out_, in_);
  }
  if (ep.kind == GemmEpilogue::Kind::kStore) return;
  if (rows <= kSmallM) {  // decode-sized: not worth waking the OpenMP threads
    FinishRows(out, out_, y, out_, 0, rows, out_, nullptr, ep);
    return;
  }
  ParallelForOmp(
      rows, [&](int64_t b, int64_t e) { FinishRows(out, out_, y, out_, b, e, out_, nullptr, ep); });
}

void Linear::ForwardMade(const RowMaker& make, int64_t rows, float* y, float* scratch,
                         const GemmEpilogue& ep) const {
  if (compute_ == ComputeType::kQ8 && GemmQ8MakesRows(*q8_, rows)) {
    GemmQ8Made(make, *q8_, b_.empty() ? nullptr : b_.data(), y, rows, ep);
    return;
  }
  ParallelForOmp(rows, [&](int64_t b, int64_t e) { make(b, e, scratch + b * in_); });
  Forward(scratch, rows, y, ep);
}

size_t Linear::weight_bytes() const {
  const size_t n = static_cast<size_t>(out_ * in_);
  switch (compute_) {
    case ComputeType::kF32:
      return n * 4;
    case ComputeType::kBF16:
      return n * 2;
    case ComputeType::kQ8:
      return q8_->bytes();
    case ComputeType::kQ4:
      return q4_->bytes();
  }
  return 0;
}

HeldBytes Linear::held_bytes() const {
  size_t owned = 0;
  switch (compute_) {
    case ComputeType::kF32:
      owned = w_.held_bytes().owned;
      break;
    case ComputeType::kBF16:
      owned = bf16_owned_.size() * 2 + (bf16_packed_ ? PackedBf16OwnedBytes(*bf16_packed_) : 0);
      break;
    case ComputeType::kQ8:
      owned = q8_ ? q8_->owned_bytes() : 0;
      break;
    case ComputeType::kQ4:
      owned = q4_ ? q4_->owned_bytes() : 0;
      break;
  }
  // Owned blocked copies are padded (and may round up), so they can exceed weight_bytes().
  HeldBytes h{owned, owned < weight_bytes() ? weight_bytes() - owned : 0};
  h += b_.held_bytes();
  return h;
}

void Linear::ForwardMany(const float* x, int64_t rows, const std::vector<const Linear*>& layers,
                         const std::vector<float*>& ys) {
  if (rows <= kSmallM && !layers.empty()) {
    std::vector<GemvJob> jobs;
    for (size_t i = 0; i < layers.size(); ++i) {
      const Linear& l = *layers[i];
      if (l.compute_ == ComputeType::kF32 || l.in_ != layers[0]->in_) {
        jobs.clear();
        break;
      }
      GemvJob j;
      j.bf16 = l.compute_ == ComputeType::kBF16 ? l.bf16_ : nullptr;
      j.bf16p = l.bf16_packed_.get();
      j.q8 = l.q8_.get();
      j.q4 = l.q4_.get();
      j.n = l.out_;
      j.bias = l.b_.empty() ? nullptr : l.b_.data();
      j.y = ys[i];
      jobs.push_back(j);
    }
    if (!jobs.empty() && GemvMany(x, rows, layers[0]->in_, jobs)) return;
  }
  for (size_t i = 0; i < layers.size(); ++i) layers[i]->Forward(x, rows, ys[i]);
}

LinearSource FindLinear(WeightStore& ws, const std::string& weight_name, int64_t out, int64_t in,
                        const std::string& bias_name, ComputeType compute) {
  LinearSource s;
  s.compute = compute;
  s.bias = bias_name.empty() ? nullptr : &ws.Get(bias_name, {out});
  s.quantized = ws.GetQuantized(weight_name, {out, in});
  if (!s.quantized) s.weight = &ws.Get(weight_name, {out, in});
  return s;
}

Linear LinearSource::Build() const {
  if (quantized) return Linear(*quantized, bias);
  return Linear(*weight, bias, compute);
}

Linear LoadLinear(WeightStore& ws, const std::string& weight_name, int64_t out, int64_t in,
                  const std::string& bias_name, ComputeType compute) {
  return FindLinear(ws, weight_name, out, in, bias_name, compute).Build();
}

}  // namespace plm
