#include "model/quantized_checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include "core/json.h"
#include "model/linear.h"
#include "model/weight_store.h"
#include "plm/config.h"
#include "plm/error.h"

namespace plm {

namespace {

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

void CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!in || !out) throw Error(ErrorCode::kIo, "cannot copy " + from + " to " + to);
  out << in.rdbuf();
  if (!out) throw Error(ErrorCode::kIo, "cannot write " + to);
}

// Which weights are Linear layers, and in which format the loader would use them (the vision
// tower keeps int8 when 4-bit is asked; q4 needs k % 64 == 0, else int8 like Linear does).
ComputeType FormatFor(const std::string& name, ComputeType asked, int64_t k) {
  ComputeType f = asked;
  if (StartsWith(name, "model.vision_tower.") && f == ComputeType::kQ4) f = ComputeType::kQ8;
  if (f == ComputeType::kQ4 && k % 64 != 0) f = ComputeType::kQ8;
  return f;
}

bool IsLinearWeight(const std::string& name) {
  static const char* kDecoder[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                   "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                   "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                                   "mlp.down_proj.weight"};
  static const char* kVision[] = {"attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight",
                                  "mlp.fc2.weight"};
  if (name == "lm_head.weight") return true;
  if (StartsWith(name, "model.language_model.layers."))
    for (const char* s : kDecoder)
      if (EndsWith(name, s)) return true;
  if (StartsWith(name, "model.vision_tower.timm_model.blocks."))
    for (const char* s : kVision)
      if (EndsWith(name, s)) return true;
  return name == "model.multi_modal_projector.linear_1.weight" ||
         name == "model.multi_modal_projector.linear_2.weight";
}

struct OutTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes = 0;
  uint64_t offset = 0;
  bool blocked = false;  // q8b / q4b: the blocked layouts (64-byte aligned)
};

class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0)
      throw Error(ErrorCode::kIo, path + ": cannot open for writing: " + std::strerror(errno));
  }
  ~Writer() {
    if (fd_ >= 0) ::close(fd_);
  }
  void PWrite(const void* data, size_t n, uint64_t off) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      const ssize_t w =
          ::pwrite(fd_, p, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(off));
      if (w <= 0) throw Error(ErrorCode::kIo, path_ + ": write failed: " + std::strerror(errno));
      p += w;
      off += static_cast<uint64_t>(w);
      n -= static_cast<size_t>(w);
    }
  }
  void Close() {
    if (::close(fd_) != 0) throw Error(ErrorCode::kIo, path_ + ": close failed");
    fd_ = -1;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

QuantizeStats QuantizeCheckpoint(const std::string& in_dir, const std::string& out_dir,
                                 ComputeType dtype,
                                 const std::function<void(const std::string&)>& progress,
                                 int format_version) {
  if (dtype != ComputeType::kQ8 && dtype != ComputeType::kQ4 && dtype != ComputeType::kBF16)
    throw Error(ErrorCode::kInvalidArgument,
                std::string("plm quantize writes q8, q4 or bf16, not ") + ComputeTypeName(dtype));
  if (format_version != 1 && format_version != 2)
    throw Error(ErrorCode::kInvalidArgument, "quantized checkpoint format version " +
                                                 std::to_string(format_version) + " (1 or 2)");
  if (dtype == ComputeType::kBF16 && format_version != 2)
    throw Error(ErrorCode::kInvalidArgument, "bf16 folders exist in format version 2 only");
  const bool blocked = format_version >= 2;
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  const PerceptionLMConfig cfg = PerceptionLMConfig::FromFile(in_dir + "/config.json");
  WeightStore ws = WeightStore::Open(in_dir);
  if (ws.quantization())
    throw Error(ErrorCode::kInvalidArgument, in_dir + " is already a quantized checkpoint (" +
                                                 ComputeTypeName(*ws.quantization()) +
                                                 "); quantize the original instead");
  if (!IsDir(out_dir) && ::mkdir(out_dir.c_str(), 0755) != 0)
    throw Error(ErrorCode::kIo, out_dir + ": cannot create: " + std::strerror(errno));
  struct stat a {
  }, b{};
  if (::stat(in_dir.c_str(), &a) == 0 && ::stat(out_dir.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
      a.st_dev == b.st_dev)
    throw Error(ErrorCode::kInvalidArgument, "--out must be a different folder than --model");

  // Plan the output tensors.
  struct Source {
    std::string in_name;                      // the tensor it comes from
    ComputeType format = ComputeType::kBF16;  // of a converted matrix
    bool convert = false;                     // else copied as is
  };
  std::map<std::string, Source> plan;
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {kQuantMetaFormat, ComputeTypeName(dtype)},
                                             {kQuantMetaVersion, std::to_string(format_version)}};
  std::vector<OutTensor> outs;
  auto add_quant = [&](const std::string& out_name, const std::string& in_name, int64_t n,
                       int64_t k) {
    const ComputeType f = FormatFor(out_name, dtype, k);
    plan[out_name] = {in_name, f, true};
    meta[kQuantMetaTensorPrefix + out_name] = !blocked                  ? ComputeTypeName(f)
                                              : f == ComputeType::kQ8   ? "q8b"
                                              : f == ComputeType::kBF16 ? "bf16b"
                                                                        : "q4b";
    if (f == ComputeType::kBF16) {  // values only, in the blocked layout
      outs.push_back({out_name,
                      DType::kBF16,
                      {(n + 63) / 64, (k + 31) / 32 * 16, 128},
                      static_cast<size_t>(Bf16BlockedBytes(n, k)),
                      0,
                      true});
    } else if (f == ComputeType::kQ8 && blocked) {
      outs.push_back({out_name,
                      DType::kI8,
                      {(n + 63) / 64, (k + 63) / 64 * 16, 64, 4},
                      static_cast<size_t>(Q8BlockedBytes(n, k)),
                      0,
                      true});
      outs.push_back({out_name + kQuantScaleSuffix, DType::kF32, {n}, static_cast<size_t>(n) * 4});
      outs.push_back({out_name + kQuantAuxSuffix, DType::kI32, {n}, static_cast<size_t>(n) * 4});
    } else if (f == ComputeType::kQ8) {
      outs.push_back({out_name, DType::kI8, {n, k}, static_cast<size_t>(n * k)});
      outs.push_back({out_name + kQuantScaleSuffix, DType::kF32, {n}, static_cast<size_t>(n) * 4});
      outs.push_back({out_name + kQuantAuxSuffix, DType::kI32, {n}, static_cast<size_t>(n) * 4});
    } else if (blocked) {  // scales inside the blocks
      outs.push_back({out_name,
                      DType::kU8,
                      {(n + 63) / 64, k / kQ4Block, 1152},
                      static_cast<size_t>(Q4BlockedBytes(n, k)),
                      0,
                      true});
      outs.push_back({out_name + kQuantAuxSuffix, DType::kF32, {n}, static_cast<size_t>(n) * 4});
    } else {
      outs.push_back({out_name, DType::kU8, {n, k / 2}, static_cast<size_t>(n * k / 2)});
      outs.push_back({out_name + kQuantScaleSuffix,
                      DType::kF16,
                      {n, k / kQ4Block},
                      static_cast<size_t>(n * (k / kQ4Block)) * 2});
      outs.push_back({out_name + kQuantAuxSuffix, DType::kF32, {n}, static_cast<size_t>(n) * 4});
    }
  };
  QuantizeStats stats;
  for (const std::string& name : ws.Names()) {
    const TensorView& v = ws.GetAnyShape(name);
    stats.in_bytes += v.nbytes;
    if (IsLinearWeight(name) && v.shape.size() == 2) {
      add_quant(name, name, v.shape[0], v.shape[1]);
      ++stats.quantized_tensors;
    } else {
      plan[name] = {name, ComputeType::kBF16, false};
      outs.push_back({name, v.dtype, v.shape, v.nbytes});
      ++stats.copied_tensors;
    }
  }
  const std::string embed = "model.language_model.embed_tokens.weight";
  // (A bf16 LM head tied to the embeddings reads the table in place: nothing to write.)
  if (dtype != ComputeType::kBF16 && cfg.text.tie_word_embeddings && !ws.Has("lm_head.weight") &&
      ws.Has(embed)) {
    const TensorView& e = ws.GetAnyShape(embed);
    if (e.shape.size() == 2) {
      add_quant("lm_head.weight", embed, e.shape[0], e.shape[1]);
      ++stats.quantized_tensors;
    }
  }

  // Blocked arrays first (64-byte aligned: sizes multiples of 64), then 4-byte (and wider)
  // types, 2-byte, 1-byte: every array stays aligned.
  std::stable_sort(outs.begin(), outs.end(), [](const OutTensor& x, const OutTensor& y) {
    if (x.blocked != y.blocked) return x.blocked;
    const size_t ax = std::min<size_t>(DTypeSize(x.dtype), 4),
                 ay = std::min<size_t>(DTypeSize(y.dtype), 4);
    if (ax != ay) return ax > ay;
    return x.name < y.name;
  });
  Json header = Json::object();
  header["__metadata__"] = meta;
  uint64_t off = 0;
  for (OutTensor& t : outs) {
    t.offset = off;
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {off, off + t.nbytes}}};
    off += t.nbytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 64 != 0) h.push_back(' ');  // data section 64-byte aligned
  const uint64_t base = 8 + h.size();
  std::map<std::string, const OutTensor*> by_name;
  for (const OutTensor& t : outs) by_name[t.name] = &t;

  const std::string tmp_path = out_dir + "/model.safetensors.partial";
  Writer w(tmp_path);
  const uint64_t hn = h.size();
  w.PWrite(&hn, 8, 0);
  w.PWrite(h.data(), h.size(), 8);
  int64_t done = 0;
  for (const auto& [name, src] : plan) {
    const TensorView& v = ws.GetAnyShape(src.in_name);
    if (!src.convert) {
      w.PWrite(v.data, v.nbytes, base + by_name.at(name)->offset);
      continue;
    }
    ++done;
    say(std::string(dtype == ComputeType::kBF16 ? "blocking " : "quantizing ") + name + " (" +
        std::to_string(done) + "/" + std::to_string(stats.quantized_tensors) + ")");
    const Linear lin(v, nullptr, src.format);
    const OutTensor& q = *by_name.at(name);
    if (src.format == ComputeType::kBF16) {  // rounded as at load (when not bf16), then blocked
      std::vector<uint16_t> b(q.nbytes / 2);
      BlockBf16Rows(lin.bf16(), lin.out_features(), lin.in_features(), 0,
                    (lin.out_features() + 63) / 64, b.data());
      w.PWrite(b.data(), q.nbytes, base + q.offset);
      continue;
    }
    const auto sit = by_name.find(name + kQuantScaleSuffix);  // none for q4b
    const OutTensor* s = sit != by_name.end() ? sit->second : nullptr;
    const OutTensor& x = *by_name.at(name + kQuantAuxSuffix);
    if (lin.compute() != src.format)
      throw Error(ErrorCode::kInternal,
                  "quantize: " + name + " came out as " + ComputeTypeName(lin.compute()));
    if (src.format == ComputeType::kQ8) {
      const Q8Matrix& m = *lin.q8();
      if (q.blocked) {
        std::vector<int8_t> b(q.nbytes);
        BlockQ8Rows(m.q, m.n, m.k, 0, (m.n + 63) / 64, b.data());
        w.PWrite(b.data(), q.nbytes, base + q.offset);
      } else {
        w.PWrite(m.q, q.nbytes, base + q.offset);
      }
      w.PWrite(m.scale, s->nbytes, base + s->offset);
      w.PWrite(m.sum, x.nbytes, base + x.offset);
    } else {
      const Q4Matrix& m = *lin.q4();
      if (q.blocked) {
        std::vector<uint8_t> b(q.nbytes);
        BlockQ4(m, b.data());
        w.PWrite(b.data(), q.nbytes, base + q.offset);
      } else {
        w.PWrite(m.q, q.nbytes, base + q.offset);
        w.PWrite(m.scale, s->nbytes, base + s->offset);
      }
      w.PWrite(m.comp, x.nbytes, base + x.offset);
    }
  }
  w.Close();
  stats.out_bytes = base + off;
  const std::string final_path = out_dir + "/model.safetensors";
  ::unlink((out_dir + "/model.safetensors.index.json").c_str());
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0)
    throw Error(ErrorCode::kIo, final_path + ": cannot rename: " + std::strerror(errno));

  // Every other file of the folder (config, tokenizer, processor, chat template) unchanged.
  DIR* d = ::opendir(in_dir.c_str());
  if (d == nullptr) throw Error(ErrorCode::kIo, in_dir + ": cannot list");
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  while (dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (f == "." || f == ".." || EndsWith(f, ".safetensors") || f == "model.safetensors.index.json")
      continue;
    const std::string from = in_dir + "/" + f;
    struct stat st;
    if (::stat(from.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    CopyFile(from, out_dir + "/" + f);
  }
  return stats;
}

}  // namespace plm
