// All tensors of a Hugging Face checkpoint folder: `model.safetensors`, or the shards named by
// `model.safetensors.index.json`. Files stay memory-mapped; lookups check names and shapes.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace plm {

class WeightStore {
 public:
  // Opens the checkpoint in `model_dir`; throws plm::Error naming the file on any problem.
  static WeightStore Open(const std::string& model_dir);

  bool Has(const std::string& name) const { return index_.count(name) != 0; }
  // Returns the tensor, checking its shape; throws kNotFound (missing) or kCorrupt (shape
  // mismatch, naming expected and found shapes). Marks it used.
  const TensorView& Get(const std::string& name, const std::vector<int64_t>& expected_shape);
  // Like Get without a shape check.
  const TensorView& GetAnyShape(const std::string& name);
  // Throws kCorrupt naming the first tensors that were never used (ignoring buffers that
  // checkpoints may carry, such as rotary inv_freq).
  void CheckAllUsed() const;

  std::vector<std::string> Names() const;
  const std::vector<std::string>& files() const { return files_; }
  // Total bytes of tensor data.
  size_t TotalBytes() const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::vector<std::string> files_;
  std::map<std::string, const TensorView*> index_;
  std::set<std::string> used_;
};

}  // namespace plm
