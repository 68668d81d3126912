// `plm quantize` checkpoints: loading one gives bit-for-bit the outputs of quantizing the
// original at load (and selects the compute type by itself); damaged or mismatched quantized
// folders fail with clear errors.
#include "model/quantized_checkpoint.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "core/cpu_features.h"
#include "core/json.h"
#include "io/safetensors.h"
#include "model/weight_store.h"
#include "plm/error.h"
#include "plm/model.h"
#include "support/golden_inputs.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::vector<std::string> Models() {
  std::vector<std::string> out;
  const std::string root = test::FixturesDir() + "/models";
  for (const auto& m : test::ListDir(root, true))
    if (test::PathExists(root + "/" + m + "/config.json")) out.push_back(m);
  return out;
}

std::vector<std::string> Goldens(const std::string& model) {
  std::vector<std::string> out;
  const std::string dir = test::FixturesDir() + "/goldens/" + model;
  for (const auto& f : test::ListDir(dir, false))
    if (f == "text.safetensors" || f == "image.safetensors") out.push_back(dir + "/" + f);
  return out;
}

ErrorCode LoadError(const std::string& dir, std::string* msg) {
  try {
    PerceptionLMForConditionalGeneration::FromPretrained(dir);
  } catch (const Error& e) {
    *msg = e.what();
    return e.code();
  }
  return static_cast<ErrorCode>(0);
}

// Every golden input of fixture model `m` gives bit-identical logits through models a and b.
void ExpectSameLogits(const std::string& m, PerceptionLMForConditionalGeneration& a,
                      PerceptionLMForConditionalGeneration& b, const std::string& what) {
  for (const auto& golden : Goldens(m)) {
    SafetensorsFile g(golden);
    std::vector<float> pix, vid;
    const ForwardInputs in = test::GoldenInputs(g, &pix, &vid);
    const ForwardOutputs ra = a.Forward(in), rb = b.Forward(in);
    ASSERT_EQ(ra.logits.data.size(), rb.logits.data.size()) << what << " " << golden;
    EXPECT_TRUE(ra.logits.data == rb.logits.data) << m << " " << what << " " << golden;
  }
}

TEST(QuantizedCheckpoint, LoadsBitIdenticalToQuantizingAtLoad) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  for (const auto& m : models) {
    const std::string dir = test::FixturesDir() + "/models/" + m;
    for (ComputeType ct : {ComputeType::kQ8, ComputeType::kQ4, ComputeType::kBF16}) {
      const std::string out = test::MakeTempDir();
      const QuantizeStats s = QuantizeCheckpoint(dir, out, ct);
      EXPECT_GT(s.quantized_tensors, 0);
      EXPECT_TRUE(test::PathExists(out + "/config.json"));
      EXPECT_TRUE(test::PathExists(out + "/tokenizer.json"));
      LoadOptions on_the_fly;
      on_the_fly.compute = ct;
      auto a = PerceptionLMForConditionalGeneration::FromPretrained(dir, on_the_fly);
      // Default options (f32): the quantized folder selects its own compute type.
      auto b = PerceptionLMForConditionalGeneration::FromPretrained(out);
      ExpectSameLogits(m, *a, *b, ComputeTypeName(ct));
      {
        // By default the quantized files are read into huge pages; mapped in place, the same.
        LoadOptions mapped;
        mapped.huge_pages = false;
        auto b_mapped = PerceptionLMForConditionalGeneration::FromPretrained(out, mapped);
        ExpectSameLogits(m, *b, *b_mapped, std::string(ComputeTypeName(ct)) + " mapped");
      }
      {
        // Version 2 stores the matrices in the blocked layouts (64-byte aligned, used in place);
        // version 1 folders (rows) still load, and on CPUs without AVX512-VNNI the blocked
        // matrices are turned back into rows: the same logits every way.
        SafetensorsFile f(out + "/model.safetensors");
        int blocked = 0;
        WeightStore original = WeightStore::Open(dir);
        for (const auto& [key, fmt] : f.metadata()) {
          if (key.rfind(kQuantMetaTensorPrefix, 0) != 0) continue;
          const std::string name = key.substr(std::string(kQuantMetaTensorPrefix).size());
          const TensorView& v = f.tensors().at(name);
          // The format each matrix should have, from the original: q4 keeps the vision tower
          // and matrices whose input size is not a multiple of 64 in int8; a tied LM head comes
          // from the embedding table.
          const TensorView& src = original.GetAnyShape(
              original.Has(name) ? name : "model.language_model.embed_tokens.weight");
          const bool int8_in_q4 =
              name.rfind("model.vision_tower.", 0) == 0 || src.shape.at(1) % 64 != 0;
          EXPECT_EQ(fmt, ct == ComputeType::kBF16                ? "bf16b"
                         : ct == ComputeType::kQ4 && !int8_in_q4 ? "q4b"
                                                                 : "q8b")
              << key;
          EXPECT_EQ(v.shape.size(), fmt == "q8b" ? 4u : 3u) << key;
          EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 64, 0u) << key;
          ++blocked;
        }
        EXPECT_EQ(blocked, s.quantized_tensors) << m;
        EXPECT_EQ(f.metadata().at(kQuantMetaVersion), "2");
        // bf16: no tied LM head is written (it reads the embedding table in place).
        EXPECT_EQ(f.Has("lm_head.weight"),
                  ct != ComputeType::kBF16 || WeightStore::Open(dir).Has("lm_head.weight"));
        const std::string v1 = test::MakeTempDir();
        if (ct == ComputeType::kBF16) {
          EXPECT_THROW(QuantizeCheckpoint(dir, v1, ct, {}, 1), Error);  // version 2 only
        } else {
          QuantizeCheckpoint(dir, v1, ct, {}, 1);
        }
        const CpuFeatures native = Cpu();
        SetCpuFeaturesForTesting(CpuFeatures{});
        auto generic_a = PerceptionLMForConditionalGeneration::FromPretrained(dir, on_the_fly);
        auto generic_b = PerceptionLMForConditionalGeneration::FromPretrained(out);
        ExpectSameLogits(m, *generic_a, *generic_b,
                         std::string(ComputeTypeName(ct)) + " generic CPU");
        SetCpuFeaturesForTesting(native);
        if (ct != ComputeType::kBF16) {
          auto c = PerceptionLMForConditionalGeneration::FromPretrained(v1);
          ExpectSameLogits(m, *a, *c, std::string(ComputeTypeName(ct)) + " version 1");
        }
      }
      // Quantizing a quantized folder is refused.
      try {
        QuantizeCheckpoint(out, test::MakeTempDir(), ct);
        ADD_FAILURE() << "re-quantizing was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      }
    }
  }
}

// Rewrites the safetensors header of `path` through `edit` (same data section).
void EditHeader(const std::string& path, const std::function<void(Json*)>& edit) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string h(n, ' ');
  in.read(h.data(), static_cast<std::streamsize>(n));
  std::string rest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Json j = Json::parse(h);
  edit(&j);
  std::string nh = j.dump();
  ASSERT_LE(nh.size(), n) << "edited header must not grow";
  nh.resize(n, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(nh.data(), static_cast<std::streamsize>(n));
  out.write(rest.data(), static_cast<std::streamsize>(rest.size()));
}

TEST(QuantizedCheckpoint, LanguageModelMatricesCopiedIntoHugePages) {
  // Open(dir, true) copies the decoder's blocked matrices (not the vision tower, not the
  // unquantized tensors) into huge-page memory where this CPU uses them in place (AVX512-VNNI):
  // every tensor reads the same bytes either way.
  const std::string dir = test::FixturesDir() + "/models/" + Models().front();
  for (ComputeType ct : {ComputeType::kQ4, ComputeType::kBF16}) {
    SCOPED_TRACE(ComputeTypeName(ct));
    const std::string out = test::MakeTempDir();
    QuantizeCheckpoint(dir, out, ct);
    WeightStore mapped = WeightStore::Open(out), copied = WeightStore::Open(out, true);
    EXPECT_EQ(mapped.HugePageBytes(), 0u);
    if (Cpu().avx512_full()) {
      EXPECT_GT(copied.HugePageBytes(), 0u);
    } else {
      EXPECT_EQ(copied.HugePageBytes(), 0u);  // rows rebuilt at load: nothing used in place
    }
    EXPECT_LE(copied.HugePageBytes(),
              copied.TotalBytes() - copied.BytesWithPrefix("model.vision_tower.") -
                  copied.BytesWithPrefix("model.language_model.embed_tokens."));
    for (const std::string& name : mapped.Names()) {
      const TensorView& a = mapped.GetAnyShape(name);
      const TensorView& b = copied.GetAnyShape(name);
      ASSERT_EQ(a.nbytes, b.nbytes) << name;
      EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 64, reinterpret_cast<uintptr_t>(a.data) % 64)
          << name;
    }
  }
  // Not a quantized checkpoint: nothing to copy (it is converted at load).
  EXPECT_EQ(WeightStore::Open(dir, true).HugePageBytes(), 0u);
}

TEST(QuantizedCheckpoint, Bf16RowsCopiedIntoHugePagesForTheAvx2Kernels) {
  // Without the AVX-512 kernels a bf16 checkpoint run in bf16 is read in place as rows at every
  // decode step: Open(dir, true, kBF16) copies the decoder layers' matrices and the LM head (the
  // embedding table where they are tied; not the vision tower or the norms) into huge pages; the
  // same bytes either way.
  // Other compute types convert the weights at load: nothing copied.
  const std::string dir = test::FixturesDir() + "/models/" + Models().front();
  const CpuFeatures saved = Cpu();
  const CpuFeatures avx2 = test::Avx2Only(saved);
  SetCpuFeaturesForTesting(avx2.avx2_kernels() ? avx2 : CpuFeatures{});
  WeightStore mapped = WeightStore::Open(dir);
  WeightStore copied = WeightStore::Open(dir, true, ComputeType::kBF16);
  EXPECT_EQ(WeightStore::Open(dir, true, ComputeType::kQ8).HugePageBytes(), 0u);
  EXPECT_EQ(WeightStore::Open(dir, true, ComputeType::kF32).HugePageBytes(), 0u);
  size_t norms = 0;  // 1-D: not copied
  for (const std::string& n : copied.Names())
    if (n.rfind("model.language_model.layers.", 0) == 0 && copied.GetAnyShape(n).shape.size() == 1)
      norms += copied.GetAnyShape(n).nbytes;
  // The LM head: lm_head.weight, or without it the embedding table (tied), read in full too.
  const size_t head = copied.Has("lm_head.weight")
                          ? copied.BytesWithPrefix("lm_head.")
                          : copied.BytesWithPrefix("model.language_model.embed_tokens.");
  EXPECT_GT(head, 0u);
  EXPECT_EQ(copied.HugePageBytes(),
            copied.BytesWithPrefix("model.language_model.layers.") - norms + head);
  for (const std::string& name : mapped.Names()) {
    const TensorView& a = mapped.GetAnyShape(name);
    const TensorView& b = copied.GetAnyShape(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
  // With the AVX-512 kernels Linear packs the bf16 layers into memory of its own: only a tied
  // embedding table (the LM head, read in place) is copied. (Only the choice of tensors reads
  // the CPU features here, so they can be set to a CPU this machine need not be.)
  CpuFeatures avx512 = saved;
  avx512.avx2 = avx512.fma = avx512.f16c = true;
  avx512.avx512f = avx512.avx512bw = avx512.avx512dq = avx512.avx512vl = true;
  avx512.avx512bf16 = avx512.avx512vnni = true;
  SetCpuFeaturesForTesting(avx512);
  const size_t tied = copied.Has("lm_head.weight") ? 0 : head;
  EXPECT_EQ(WeightStore::Open(dir, true, ComputeType::kBF16).HugePageBytes(), tied);
  EXPECT_EQ(WeightStore::Open(dir, true, ComputeType::kQ8).HugePageBytes(), 0u);
  SetCpuFeaturesForTesting(saved);
}

TEST(QuantizedCheckpoint, DamagedOrMismatchedFilesGiveClearErrors) {
  const auto models = Models();
  ASSERT_FALSE(models.empty());
  const std::string dir = test::FixturesDir() + "/models/" + models[0];
  const std::string base = test::MakeTempDir();
  QuantizeCheckpoint(dir, base, ComputeType::kQ4);
  auto fresh = [&] {
    const std::string d = test::MakeTempDir();
    for (const auto& f : test::ListDir(base, false)) {
      std::ifstream i(base + "/" + f, std::ios::binary);
      std::ofstream o(d + "/" + f, std::ios::binary);
      o << i.rdbuf();
    }
    return d;
  };
  std::string msg;
  {  // unknown format version
    const std::string d = fresh();
    EditHeader(d + "/model.safetensors",
               [](Json* j) { (*j)["__metadata__"][kQuantMetaVersion] = "9"; });
    EXPECT_EQ(LoadError(d, &msg), ErrorCode::kUnsupported);
    EXPECT_NE(msg.find("version"), std::string::npos) << msg;
  }
  // A copy whose first layer's up_proj declares `format` (its arrays stay 4-bit rows).
  auto declaring = [&](const std::string& format) {
    const std::string d = fresh();
    EditHeader(d + "/model.safetensors", [&](Json* j) {
      (*j)["__metadata__"][std::string(kQuantMetaTensorPrefix) +
                           "model.language_model.layers.0.mlp.up_proj.weight"] = format;
    });
    return d;
  };
  // A declared format that does not match the arrays (int8 rows; blocked int8; blocked bf16),
  // or is unknown.
  for (const std::string format : {"q8", "q8b", "bf16b"}) {
    EXPECT_EQ(LoadError(declaring(format), &msg), ErrorCode::kCorrupt) << format;
    EXPECT_NE(msg.find("up_proj"), std::string::npos) << msg;
  }
  EXPECT_EQ(LoadError(declaring("q3"), &msg), ErrorCode::kUnsupported);
  EXPECT_NE(msg.find("q3"), std::string::npos) << msg;
  {  // a folder format this build does not know
    const std::string d = fresh();
    EditHeader(d + "/model.safetensors",
               [](Json* j) { (*j)["__metadata__"][kQuantMetaFormat] = "q5"; });
    EXPECT_EQ(LoadError(d, &msg), ErrorCode::kUnsupported);
    EXPECT_NE(msg.find("q5"), std::string::npos) << msg;
  }
  {  // config.json of another shape: clear shape error, no crash
    const std::string d = fresh();
    Json cfg = ReadJsonFile(d + "/config.json");
    cfg["text_config"]["intermediate_size"] =
        cfg["text_config"]["intermediate_size"].get<int>() * 2;
    std::ofstream(d + "/config.json") << cfg.dump();
    EXPECT_EQ(LoadError(d, &msg), ErrorCode::kCorrupt);
    EXPECT_NE(msg.find("config"), std::string::npos) << msg;
  }
  {  // truncated weights file
    const std::string d = fresh();
    const std::string p = d + "/model.safetensors";
    std::ifstream i(p, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(i)), std::istreambuf_iterator<char>());
    i.close();
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(all.data(), static_cast<std::streamsize>(all.size() / 2));
    EXPECT_EQ(LoadError(d, &msg), ErrorCode::kCorrupt);
  }
}

}  // namespace
}  // namespace plm
