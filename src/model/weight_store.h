// All tensors of a Hugging Face checkpoint folder: `model.safetensors`, or the shards named by
// `model.safetensors.index.json`. Files stay memory-mapped; lookups check names and shapes.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "plm/model.h"

namespace plm {

// A [n, k] matrix stored by `plm quantize` (format in model/quantized_checkpoint.h): pointers
// into the mapped file, used in place.
struct QuantizedWeight {
  ComputeType format = ComputeType::kQ8;  // kQ8, kQ4, or kBF16 (blocked only)
  int64_t n = 0, k = 0;
  bool blocked = false;         // the blocked layout (formats "q8b", "q4b", "bf16b")
  const void* q = nullptr;      // q8: int8 [n, k] or blocked; q4: packed nibbles [n, k / 2] or
                                // blocked; bf16b: the blocked bf16 values
  const void* scale = nullptr;  // q8: f32 [n]; q4: f16 [n, k / 32]
  const void* aux = nullptr;    // q8: int32 row sums [n]; q4: f32 offset compensation [n];
                                // bf16b: none
};

class WeightStore {
 public:
  // Move-only: index_ points into relocated_, whose nodes a move keeps and a copy would not.
  WeightStore() = default;
  WeightStore(WeightStore&&) = default;
  WeightStore& operator=(WeightStore&&) = default;
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  // Opens the checkpoint in `model_dir`; throws plm::Error naming the file on any problem.
  // copy_to_huge_pages (LoadOptions::huge_pages): the language model's matrices that this CPU
  // reads in place at every decode step are copied into huge-page memory — a quantized
  // checkpoint's blocked matrices where the CPU has the AVX-512 kernels, a bf16 checkpoint's
  // rows computed in bf16 (`compute`) where it has not (the AVX2 kernels read rows in place);
  // everything else stays mapped.
  static WeightStore Open(const std::string& model_dir, bool copy_to_huge_pages = false,
                          ComputeType compute = ComputeType::kF32);

  bool Has(const std::string& name) const { return index_.count(name) != 0; }
  // Returns the tensor, checking its shape; throws kNotFound (missing) or kCorrupt (shape
  // mismatch, naming expected and found shapes). Marks it used.
  const TensorView& Get(const std::string& name, const std::vector<int64_t>& expected_shape);
  // Like Get without a shape check.
  const TensorView& GetAnyShape(const std::string& name);
  // For a checkpoint written by `plm quantize`: the matrix `name` when it is stored quantized
  // (checking formats, dtypes, shapes against `expected_shape` [n, k] and alignment; throws
  // kCorrupt / kUnsupported naming the tensor), else nothing. Marks its tensors used.
  std::optional<QuantizedWeight> GetQuantized(const std::string& name,
                                              const std::vector<int64_t>& expected_shape);
  // The format a quantized checkpoint was written for (`plm quantize --dtype`), if it is one.
  std::optional<ComputeType> quantization() const { return quantization_; }
  // The compute type to use: the checkpoint's format when it is quantized, else `requested`.
  ComputeType EffectiveCompute(ComputeType requested) const {
    return quantization_ ? *quantization_ : requested;
  }
  // Throws kCorrupt naming the first tensors that were never used (ignoring buffers that
  // checkpoints may carry, such as rotary inv_freq).
  void CheckAllUsed() const;

  std::vector<std::string> Names() const;
  const std::vector<std::string>& files() const { return files_; }
  // Total bytes of tensor data.
  size_t TotalBytes() const;
  // Bytes of the tensors whose names start with `prefix`.
  size_t BytesWithPrefix(const std::string& prefix) const;
  // Bytes of the tensors copied into huge pages (Open's copy_to_huge_pages).
  size_t HugePageBytes() const { return huge_bytes_; }

 private:
  static WeightStore OpenFiles(const std::string& model_dir);
  void CopyDecoderToHugePages(ComputeType compute);
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::vector<std::string> files_;
  std::map<std::string, const TensorView*> index_;
  std::set<std::string> used_;
  std::map<std::string, std::string> metadata_;  // merged __metadata__ of all shards
  std::optional<ComputeType> quantization_;
  // CopyDecoderToHugePages: the copies' views (index_ points at them) and their memory.
  std::map<std::string, TensorView> relocated_;
  std::shared_ptr<uint8_t> huge_arena_;
  size_t huge_bytes_ = 0;
};

}  // namespace plm
