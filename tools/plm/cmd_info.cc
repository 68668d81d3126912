// `plm info MODEL`: what a checkpoint is and what it needs, without loading the weights.
#include <cstdio>
#include <map>
#include <string>

#include "commands.h"
#include "core/json.h"
#include "model/weight_store.h"
#include "model_resolver.h"
#include "plm/config.h"

namespace plm::cli {

namespace {

struct InfoArgs {
  std::string model;
  int64_t context = 0;
  bool json = false;
};

std::string Human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string Count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) {
    std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  } else if (n >= 1000000) {
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  } else if (n >= 1000) {
    std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  }
  return buf;
}

int Run(const InfoArgs& a) {
  const std::string dir = ResolveModel(a.model);
  const PerceptionLMConfig cfg = PerceptionLMConfig::FromFile(dir + "/config.json");
  WeightStore ws = WeightStore::Open(dir);
  std::map<std::string, int64_t> params;
  std::map<std::string, int64_t> dtypes;
  int64_t total = 0;
  for (const auto& name : ws.Names()) {
    const TensorView& v = ws.GetAnyShape(name);
    const std::string part = name.rfind("model.vision_tower.", 0) == 0            ? "vision"
                             : name.rfind("model.multi_modal_projector.", 0) == 0 ? "projector"
                                                                                  : "language";
    params[part] += v.numel();
    dtypes[std::string(DTypeName(v.dtype))] += v.numel();
    total += v.numel();
  }
  const auto& t = cfg.text;
  const int64_t ctx = a.context > 0 ? a.context : t.max_position_embeddings;
  // Float32 K and V for every layer and KV head, per token.
  const int64_t kv_per_token = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * 4;
  const size_t weight_bytes = ws.TotalBytes();
  if (a.json) {
    Json j = {{"model", dir},
              {"architecture", "PerceptionLMForConditionalGeneration"},
              {"vision_architecture", cfg.vision.architecture},
              {"parameters",
               {{"total", total},
                {"vision", params["vision"]},
                {"projector", params["projector"]},
                {"language", params["language"]}}},
              {"dtype", cfg.dtype},
              {"weight_bytes", weight_bytes},
              {"context_length", t.max_position_embeddings},
              {"tile_size", cfg.vision.img_height},
              {"tokens_per_tile", cfg.TokensPerTile()},
              {"kv_cache_bytes_per_token", kv_per_token},
              {"kv_cache_context", ctx},
              {"kv_cache_bytes", kv_per_token * ctx}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model:            %s\n", dir.c_str());
  std::printf("architecture:     PerceptionLMForConditionalGeneration\n");
  std::printf(
      "vision tower:     %s, %lld blocks, width %lld, %lld heads, %lldx%lld px tiles, %s class "
      "token\n",
      cfg.vision.architecture.c_str(), (long long)cfg.vision.depth, (long long)cfg.vision.embed_dim,
      (long long)cfg.vision.num_heads, (long long)cfg.vision.img_width,
      (long long)cfg.vision.img_height, cfg.vision.class_token ? "with" : "no");
  std::printf("projector:        2-layer MLP, pooling ratio %lld -> %lld tokens per tile\n",
              (long long)cfg.projector_pooling_ratio, (long long)cfg.TokensPerTile());
  std::printf(
      "language model:   Llama, %lld layers, hidden %lld, %lld heads / %lld KV heads, head dim "
      "%lld, rope %s\n",
      (long long)t.num_hidden_layers, (long long)t.hidden_size, (long long)t.num_attention_heads,
      (long long)t.num_key_value_heads, (long long)t.head_dim, t.rope.rope_type.c_str());
  std::printf("parameters:       %s total (vision %s, projector %s, language %s)\n",
              Count(total).c_str(), Count(params["vision"]).c_str(),
              Count(params["projector"]).c_str(), Count(params["language"]).c_str());
  std::string dt;
  for (const auto& [k, v] : dtypes) dt += (dt.empty() ? "" : ", ") + k + " " + Count(v);
  std::printf("weights:          %s on disk (%s)\n",
              Human(static_cast<double>(weight_bytes)).c_str(), dt.c_str());
  std::printf("context length:   %lld tokens\n", (long long)t.max_position_embeddings);
  std::printf("KV cache:         %s per token, %s at %lld tokens\n",
              Human(static_cast<double>(kv_per_token)).c_str(),
              Human(static_cast<double>(kv_per_token) * static_cast<double>(ctx)).c_str(),
              (long long)ctx);
  return 0;
}

}  // namespace

Command RegisterInfo(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* sub =
      app.add_subcommand("info", "Describe a model: architecture, parameters, memory needs");
  sub->add_option("model", args->model, "Model folder (Hugging Face layout) or Hub id")->required();
  sub->add_option("--context", args->context,
                  "Context length for the KV cache estimate (default: model maximum)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--json", args->json, "Print JSON");
  return [args] { return Run(*args); };
}

}  // namespace plm::cli
