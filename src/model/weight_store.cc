#include "model/weight_store.h"

#include <sys/stat.h>

#include "core/json.h"
#include "plm/error.h"

namespace plm {

namespace {

bool FileExists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

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

WeightStore WeightStore::Open(const std::string& model_dir) {
  WeightStore ws;
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  const std::string single_path = model_dir + "/model.safetensors";
  if (FileExists(index_path)) {
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
  } else if (FileExists(single_path)) {
    ws.shards_.push_back(std::make_shared<SafetensorsFile>(single_path));
    ws.files_.push_back(single_path);
    for (const auto& [name, view] : ws.shards_[0]->tensors()) ws.index_[name] = &view;
  } else {
    throw Error(
        ErrorCode::kNotFound,
        model_dir +
            ": no weights found (expected model.safetensors or model.safetensors.index.json)");
  }
  return ws;
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

}  // namespace plm
