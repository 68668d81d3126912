#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/json.h"
#include "plm/error.h"

namespace plm {

namespace {

// Headers above this size are rejected before parsing (real headers are well under 1 MiB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void Corrupt(const std::string& path, const std::string& msg) {
  throw Error(ErrorCode::kCorrupt, path + ": corrupt safetensors: " + msg);
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::vector<float> TensorView::ToF32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  ConvertToF32(dtype, data, out.data(), out.size());
  return out;
}

std::vector<int64_t> TensorView::ToI64() const {
  const size_t n = static_cast<size_t>(numel());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::kI64:
        std::memcpy(&out[i], data + 8 * i, 8);
        break;
      case DType::kI32: {
        int32_t v;
        std::memcpy(&v, data + 4 * i, 4);
        out[i] = v;
        break;
      }
      case DType::kI16: {
        int16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        out[i] = v;
        break;
      }
      case DType::kI8:
        out[i] = static_cast<int8_t>(data[i]);
        break;
      case DType::kU8:
      case DType::kBool:
        out[i] = data[i];
        break;
      default:
        throw Error(ErrorCode::kInvalidArgument, "tensor " + name + " has dtype " +
                                                     std::string(DTypeName(dtype)) +
                                                     ", expected an integer type");
    }
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_unique<MappedFile>(path)) {
  const uint8_t* base = file_->data();
  const uint64_t size = file_->size();
  if (size < 8)
    Corrupt(path,
            "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t header_len;
  std::memcpy(&header_len, base, 8);
  if (header_len > kMaxHeaderBytes)
    Corrupt(path, "header length " + std::to_string(header_len) + " exceeds the 100 MiB limit");
  if (header_len > size - 8)
    Corrupt(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                      std::to_string(size) + "-byte file (truncated?)");
  const std::string header(reinterpret_cast<const char*>(base + 8), header_len);
  Json j;
  try {
    j = Json::parse(header);
  } catch (const Json::exception& e) {  // parse errors, and numbers out of range (406)
    Corrupt(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) Corrupt(path, "header is not a JSON object");

  const uint8_t* data = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const Json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) Corrupt(path, "__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor \"" + name + "\"";
    if (!e.is_object()) Corrupt(path, where + " entry is not an object");
    TensorView v;
    v.name = name;
    auto dt = e.find("dtype");
    if (dt == e.end() || !dt->is_string()) Corrupt(path, where + " has no dtype string");
    if (!ParseDType(dt->get<std::string>(), &v.dtype))
      throw Error(ErrorCode::kUnsupported,
                  path + ": " + where + " has unsupported dtype " + dt->get<std::string>());
    auto sh = e.find("shape");
    if (sh == e.end() || !sh->is_array()) Corrupt(path, where + " has no shape array");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        Corrupt(path, where + " has a negative or non-integer dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim)
        Corrupt(path, where + " shape overflows");
      numel *= dim;
      v.shape.push_back(static_cast<int64_t>(dim));
    }
    auto off = e.find("data_offsets");
    if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      Corrupt(path, where + " has no valid data_offsets [begin, end]");
    const uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
    if (b > en) Corrupt(path, where + " data_offsets begin > end");
    if (en > data_size)
      Corrupt(path, where + " data_offsets end " + std::to_string(en) +
                        " is past the end of the data section (" + std::to_string(data_size) +
                        " bytes; truncated file?)");
    const uint64_t esize = DTypeSize(v.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize || numel * esize != en - b)
      Corrupt(path, where + " holds " + std::to_string(en - b) + " bytes but dtype " +
                        std::string(DTypeName(v.dtype)) + " and shape " + v.ShapeString() +
                        " need " + std::to_string(numel * esize));
    v.data = data + b;
    v.nbytes = en - b;
    auto [pos, inserted] = tensors_.emplace(name, std::move(v));
    ranges.push_back({b, en, &pos->first});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end)
      Corrupt(path, "tensors \"" + *ranges[i - 1].name + "\" and \"" + *ranges[i].name +
                        "\" have overlapping data ranges");
  }
}

const TensorView& SafetensorsFile::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error(ErrorCode::kNotFound, path() + ": missing tensor \"" + name + "\"");
  return it->second;
}

void WriteSafetensors(const std::string& path, const std::map<std::string, TensorData>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", std::string(DTypeName(t.dtype))},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(ErrorCode::kIo, path + ": cannot open for writing");
  const uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& [name, t] : tensors)
    out.write(reinterpret_cast<const char*>(t.bytes.data()),
              static_cast<std::streamsize>(t.bytes.size()));
  if (!out) throw Error(ErrorCode::kIo, path + ": write failed");
}

}  // namespace plm
