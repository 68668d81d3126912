// Safetensors reading (validated, memory-mapped) and writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header mapping tensor names to
// {dtype, shape, data_offsets: [begin, end)} relative to the data section, then the raw data.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace plm {

// A tensor inside a mapped file. `data` stays valid while the owning file lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  std::string ShapeString() const;  // "[2, 3]"
  // Copies and converts the elements to float32.
  std::vector<float> ToF32() const;
  // Copies integer elements (I64/I32/I16/I8/U8/BOOL) as int64.
  std::vector<int64_t> ToI64() const;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`: header length, JSON, dtypes, shapes, offsets inside the data
  // section, no overlapping ranges, byte counts matching shape x dtype. Throws plm::Error
  // (kCorrupt) naming the file and the problem.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool Has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws kNotFound naming the tensor and the file.
  const TensorView& Get(const std::string& name) const;

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Tensors to write: name -> (dtype, shape, raw little-endian bytes).
struct TensorData {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Writes a safetensors file (tensors in name order, 8-byte aligned header).
void WriteSafetensors(const std::string& path, const std::map<std::string, TensorData>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace plm
