#include "model/weight_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/json.h"
#include "core/lowp_gemm.h"
#include "core/mapped_file.h"
#include "model/quantized_checkpoint.h"
#include "plm/error.h"
#include "plm/huge_page_allocator.h"

namespace plm {

namespace {

std::string ShapeStr(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool Ignorable(const std::string& name) {
  // Non-persistent buffers some converters leave behind.
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

WeightStore WeightStore::Open(const std::string& model_dir, bool copy_to_huge_pages,
                              ComputeType compute) {
  WeightStore ws = OpenFiles(model_dir);
  if (copy_to_huge_pages) ws.CopyDecoderToHugePages(compute);
  return ws;
}

void WeightStore::CopyDecoderToHugePages(ComputeType compute) {
  // The language model's matrices that the decode kernels read in place, in full, at every step:
  // worth one copy into 2 MiB pages (the mapped pages are released as they are copied). Which
  // ones depends on the CPU:
  // - AVX-512 kernels: a quantized folder's blocked matrices (with their scales and sums). Other
  //   checkpoints, and version-1 row formats, are rebuilt or repacked by Linear into memory of its
  //   own anyway.
  // - AVX2 and portable: a bf16 checkpoint computed in bf16 is read in place as rows. From the
  //   mapping's 4 KB pages the 1B's matrices read at 0.85-0.90 of the read probe on an AMD Zen 2,
  //   from huge pages at 0.91-1.00 (alternated with --mmap, docs/PERFORMANCE.md session 22).
  //   Quantized folders are rebuilt as rows at load there.
  // - Every CPU: a bf16 LM head tied to the embedding table reads that table in place
  //   (LlamaDecoder), in full every step (on the Zen 2 its bytes per second went from 0.84-0.89
  //   to 1.0 of the layers' in huge pages, session 23; lookups then read the copy too).
  // The vision tower is compute-bound (and skipped by text-only requests) and an untied
  // embedding table is read a row per token: those stay mapped, touched only where used.
  std::vector<std::string> names;
  const bool bf16_rows = !quantization_ && compute == ComputeType::kBF16;
  const std::string embed = "model.language_model.embed_tokens.weight";
  if (bf16_rows && index_.count("lm_head.weight") == 0 && index_.count(embed) != 0 &&
      index_.at(embed)->dtype == DType::kBF16)
    names.push_back(embed);
  if (!Cpu().avx512_full()) {
    if (!bf16_rows) return;
    for (const auto& [name, v] : index_)
      if (v->dtype == DType::kBF16 && v->shape.size() == 2 &&
          (name.rfind("model.language_model.layers.", 0) == 0 || name == "lm_head.weight"))
        names.push_back(name);
  } else if (quantization_) {
    const std::string vision_prefix = "model.vision_tower.";
    for (const auto& [key, fmt] : metadata_) {
      if (key.rfind(kQuantMetaTensorPrefix, 0) != 0 ||
          (fmt != "q8b" && fmt != "q4b" && fmt != "bf16b"))
        continue;
      const std::string name = key.substr(std::string(kQuantMetaTensorPrefix).size());
      if (name.rfind(vision_prefix, 0) == 0) continue;
      for (const std::string& n : {name, name + kQuantScaleSuffix, name + kQuantAuxSuffix})
        if (index_.count(n) != 0) names.push_back(n);
    }
  }
  auto rounded = [](size_t b) { return (b + 63) / 64 * 64; };  // keeps every array 64-aligned
  size_t total = 0;
  for (const std::string& n : names) total += rounded(index_.at(n)->nbytes);
  if (total == 0) return;
  auto* arena = static_cast<uint8_t*>(AllocateLarge(total));
  huge_arena_ = std::shared_ptr<uint8_t>(arena, [total](uint8_t* p) { FreeLarge(p, total); });
  size_t off = 0;
  for (const std::string& n : names) {
    TensorView v = *index_.at(n);
    // In slices, each slice's mapped pages released once copied, so that the copy replaces them
    // in this process's memory instead of adding to it.
    constexpr size_t kSlice = size_t{8} << 20;
    for (size_t at = 0; at < v.nbytes; at += kSlice) {
      const size_t len = std::min(kSlice, v.nbytes - at);
      std::memcpy(arena + off + at, v.data + at, len);
      ReleasePages(v.data + at, len);
    }
    v.data = arena + off;
    off += rounded(v.nbytes);
    huge_bytes_ += v.nbytes;
    auto it = relocated_.insert_or_assign(n, std::move(v)).first;
    index_[n] = &it->second;
  }
}

WeightStore WeightStore::OpenFiles(const std::string& model_dir) {
  WeightStore ws;
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  const std::string single_path = model_dir + "/model.safetensors";
  if (IsRegularFile(index_path)) {
    const Json j = ReadJsonFile(index_path);
    auto wm = j.find("weight_map");
    if (!j.is_object() || wm == j.end() || !wm->is_object())
      throw Error(ErrorCode::kCorrupt, index_path + ": missing \"weight_map\" object");
    std::map<std::string, size_t> shard_of_file;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        throw Error(ErrorCode::kCorrupt,
                    index_path + ": weight_map entry \"" + it.key() + "\" is not a file name");
      const std::string file = it.value().get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos || file == "..")
        throw Error(ErrorCode::kCorrupt, index_path + ": invalid shard file name \"" + file + "\"");
      auto s = shard_of_file.find(file);
      if (s == shard_of_file.end()) {
        const std::string path = model_dir + "/" + file;
        ws.shards_.push_back(std::make_shared<SafetensorsFile>(path));
        ws.files_.push_back(path);
        s = shard_of_file.emplace(file, ws.shards_.size() - 1).first;
      }
      const SafetensorsFile& shard = *ws.shards_[s->second];
      if (!shard.Has(it.key()))
        throw Error(ErrorCode::kCorrupt, index_path + ": tensor \"" + it.key() +
                                             "\" is mapped to " + file +
                                             " but that shard does not contain it");
      ws.index_[it.key()] = &shard.Get(it.key());
    }
  } else if (IsRegularFile(single_path)) {
    ws.shards_.push_back(std::make_shared<SafetensorsFile>(single_path));
    ws.files_.push_back(single_path);
    for (const auto& [name, view] : ws.shards_[0]->tensors()) ws.index_[name] = &view;
  } else {
    throw Error(
        ErrorCode::kNotFound,
        model_dir +
            ": no weights found (expected model.safetensors or model.safetensors.index.json)");
  }
  for (const auto& shard : ws.shards_)
    for (const auto& [k, v] : shard->metadata()) ws.metadata_[k] = v;
  auto q = ws.metadata_.find(kQuantMetaFormat);
  if (q != ws.metadata_.end()) {
    auto ver = ws.metadata_.find(kQuantMetaVersion);
    if (ver == ws.metadata_.end() || (ver->second != "1" && ver->second != kQuantVersion))
      throw Error(ErrorCode::kUnsupported,
                  model_dir + ": quantized checkpoint of format version \"" +
                      (ver == ws.metadata_.end() ? std::string("?") : ver->second) +
                      "\" (this build reads versions 1 and " + kQuantVersion + ")");
    if (q->second == "q8") {
      ws.quantization_ = ComputeType::kQ8;
    } else if (q->second == "q4") {
      ws.quantization_ = ComputeType::kQ4;
    } else if (q->second == "bf16") {
      ws.quantization_ = ComputeType::kBF16;
    } else {
      throw Error(ErrorCode::kUnsupported, model_dir + ": unknown quantization \"" + q->second +
                                               "\" (expected q8, q4 or bf16)");
    }
  }
  return ws;
}

std::optional<QuantizedWeight> WeightStore::GetQuantized(
    const std::string& name, const std::vector<int64_t>& expected_shape) {
  auto fmt = metadata_.find(kQuantMetaTensorPrefix + name);
  if (fmt == metadata_.end()) return std::nullopt;
  const std::string what = "quantized tensor \"" + name + "\"";
  if (expected_shape.size() != 2)
    throw Error(ErrorCode::kInternal, what + ": quantized tensors are matrices");
  const int64_t n = expected_shape[0], k = expected_shape[1];
  QuantizedWeight w;
  w.n = n;
  w.k = k;
  DType qt = DType::kU8, st = DType::kF32, at = DType::kF32;
  std::vector<int64_t> qs, ss, as;
  size_t q_align = 1;
  if ((fmt->second == "q4" || fmt->second == "q4b") && k % 64 != 0)
    throw Error(ErrorCode::kCorrupt, what + " is q4 but its input size " + std::to_string(k) +
                                         " is not a multiple of 64");
  if (fmt->second == "q8") {
    w.format = ComputeType::kQ8;
    qt = DType::kI8, st = DType::kF32, at = DType::kI32;
    qs = {n, k}, ss = {n}, as = {n};
  } else if (fmt->second == "q8b") {
    w.format = ComputeType::kQ8;
    w.blocked = true;
    qt = DType::kI8, st = DType::kF32, at = DType::kI32;
    qs = {(n + 63) / 64, (k + 63) / 64 * 16, 64, 4}, ss = {n}, as = {n};
    q_align = 64;
  } else if (fmt->second == "q4b") {
    w.format = ComputeType::kQ4;
    w.blocked = true;
    qt = DType::kU8, st = DType::kF16, at = DType::kF32;
    qs = {(n + 63) / 64, k / kQ4Block, 1152}, as = {n};
    q_align = 64;
  } else if (fmt->second == "bf16b") {
    w.format = ComputeType::kBF16;
    w.blocked = true;
    qt = DType::kBF16;
    qs = {(n + 63) / 64, (k + 31) / 32 * 16, 128};
    q_align = 64;
  } else if (fmt->second == "q4") {
    w.format = ComputeType::kQ4;
    qt = DType::kU8, st = DType::kF16, at = DType::kF32;
    qs = {n, k / 2}, ss = {n, k / kQ4Block}, as = {n};
  } else {
    throw Error(ErrorCode::kUnsupported, what + " has unknown format \"" + fmt->second + "\"");
  }
  auto part = [&](const std::string& pname, DType dt, const std::vector<int64_t>& shape,
                  size_t align) {
    const TensorView& v = GetAnyShape(pname);
    if (v.dtype != dt || v.shape != shape)
      throw Error(ErrorCode::kCorrupt,
                  what + ": \"" + pname + "\" is " + std::string(DTypeName(v.dtype)) + " " +
                      v.ShapeString() + ", expected " + std::string(DTypeName(dt)) + " " +
                      ShapeStr(shape) + " (" + fmt->second + " of a [" + std::to_string(n) + ", " +
                      std::to_string(k) + "] matrix; does the checkpoint match config.json?)");
    if (reinterpret_cast<uintptr_t>(v.data) % align != 0)
      throw Error(ErrorCode::kCorrupt, what + ": \"" + pname + "\" is not " +
                                           std::to_string(align) + "-byte aligned in the file");
    return static_cast<const void*>(v.data);
  };
  w.q = part(name, qt, qs, q_align);
  if (fmt->second == "bf16b") return w;  // values only
  if (fmt->second != "q4b")              // q4b keeps its scales inside the blocks
    w.scale = part(name + kQuantScaleSuffix, st, ss, DTypeSize(st));
  w.aux = part(name + kQuantAuxSuffix, at, as, 4);
  return w;
}

const TensorView& WeightStore::GetAnyShape(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    throw Error(ErrorCode::kNotFound, (files_.size() == 1 ? files_[0] : "checkpoint") +
                                          ": missing tensor \"" + name + "\"");
  }
  used_.insert(name);
  return *it->second;
}

const TensorView& WeightStore::Get(const std::string& name,
                                   const std::vector<int64_t>& expected_shape) {
  if (metadata_.count(kQuantMetaTensorPrefix + name))
    throw Error(ErrorCode::kUnsupported, "tensor \"" + name + "\" is stored quantized (" +
                                             metadata_.at(kQuantMetaTensorPrefix + name) +
                                             ") but is read here as a plain tensor");
  const TensorView& v = GetAnyShape(name);
  if (v.shape != expected_shape)
    throw Error(ErrorCode::kCorrupt, "tensor \"" + name + "\" has shape " + v.ShapeString() +
                                         " but the config implies " + ShapeStr(expected_shape));
  const DType t = v.dtype;
  if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16)
    throw Error(ErrorCode::kUnsupported, "tensor \"" + name + "\" has dtype " +
                                             std::string(DTypeName(t)) +
                                             " (supported weight dtypes: BF16, F16, F32)");
  return v;
}

void WeightStore::CheckAllUsed() const {
  std::string unexpected;
  int count = 0;
  for (const auto& [name, view] : index_) {
    if (used_.count(name) || Ignorable(name)) continue;
    if (count < 5) unexpected += (count ? ", " : "") + ("\"" + name + "\" " + view->ShapeString());
    ++count;
  }
  if (count > 0)
    throw Error(ErrorCode::kCorrupt, "checkpoint has " + std::to_string(count) +
                                         " unexpected tensor(s) the config does not account for: " +
                                         unexpected + (count > 5 ? ", ..." : ""));
}

std::vector<std::string> WeightStore::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

size_t WeightStore::TotalBytes() const {
  size_t n = 0;
  for (const auto& [name, view] : index_) n += view->nbytes;
  return n;
}

size_t WeightStore::BytesWithPrefix(const std::string& prefix) const {
  size_t n = 0;
  for (auto it = index_.lower_bound(prefix); it != index_.end() && it->first.starts_with(prefix);
       ++it)
    n += it->second->nbytes;
  return n;
}

}  // namespace plm
