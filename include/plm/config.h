// PerceptionLMConfig and its sub-configs, read from a Hugging Face `config.json`.
//
// Both forms found in the wild load: transformers 5.x (`rope_parameters`, `dtype`) and 4.x
// (`rope_theta` + `rope_scaling`, `torch_dtype`). The vision tower is a timm Perception Encoder
// whose per-architecture defaults are resolved here, then overridden by `model_args`.
//
//   plm::PerceptionLMConfig cfg = plm::PerceptionLMConfig::FromFile("model/config.json");
//   std::printf("%d layers\n", cfg.text.num_hidden_layers);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace plm {

// Llama RoPE parameters (`rope_parameters` / `rope_scaling`).
struct RopeConfig {
  std::string rope_type = "default";  // "default" or "llama3"
  double rope_theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// `text_config`: a LlamaConfig.
struct TextConfig {
  std::string model_type = "llama";
  int64_t vocab_size = 128256;
  int64_t hidden_size = 2048;
  int64_t intermediate_size = 8192;
  int64_t num_hidden_layers = 16;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 64;
  double rms_norm_eps = 1e-5;
  int64_t max_position_embeddings = 11520;
  bool tie_word_embeddings = true;
  bool attention_bias = false;
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  int64_t bos_token_id = 128000;
  std::vector<int64_t> eos_token_ids = {128001, 128009};
  int64_t pad_token_id = -1;  // -1: none
  RopeConfig rope;
};

// `vision_config`: a timm Perception Encoder (Eva) after architecture defaults + model_args.
struct VisionConfig {
  std::string architecture = "vit_pe_core_large_patch14_336";
  int64_t patch_size = 14;
  int64_t embed_dim = 1024;
  int64_t depth = 23;
  int64_t num_heads = 16;
  double mlp_ratio = 4.0;
  int64_t img_height = 448;
  int64_t img_width = 448;
  bool class_token = true;
  bool use_abs_pos_emb = true;
  bool use_rot_pos_emb = true;
  bool use_pre_transformer_norm = true;
  bool use_post_transformer_norm = false;
  bool qkv_bias = true;
  double init_values = 0.1;  // <= 0: no LayerScale
  double rope_temperature = 10000.0;
  double rope_grid_offset = 1.0;
  std::string rope_grid_indexing = "xy";
  int64_t ref_feat_h = 32;  // 0: no reference scaling
  int64_t ref_feat_w = 32;
  double layer_norm_eps = 1e-5;
  std::string global_pool;

  int64_t grid_h() const { return img_height / patch_size; }
  int64_t grid_w() const { return img_width / patch_size; }
  int64_t num_patches() const { return grid_h() * grid_w(); }
  int64_t num_prefix_tokens() const { return class_token ? 1 : 0; }
  int64_t head_dim() const { return embed_dim / num_heads; }
  int64_t mlp_hidden() const {
    return static_cast<int64_t>(static_cast<double>(embed_dim) * mlp_ratio);
  }
};

struct PerceptionLMConfig {
  std::string model_type = "perception_lm";
  std::vector<std::string> architectures = {"PerceptionLMForConditionalGeneration"};
  std::string dtype = "bfloat16";  // checkpoint dtype (`dtype` or `torch_dtype`)
  int64_t image_token_id = 128002;
  int64_t video_token_id = 128003;
  int64_t projector_pooling_ratio = 1;
  bool vision_use_cls_token = true;
  TextConfig text;
  VisionConfig vision;

  // Vision tokens per tile after the projector's pooling.
  int64_t TokensPerTile() const;

  // Parses a config.json; throws plm::Error naming the file and the key on a bad or
  // unsupported config (architecture, rope type, shapes that do not divide).
  static PerceptionLMConfig FromFile(const std::string& path);
  static PerceptionLMConfig FromJsonString(const std::string& text, const std::string& what);
  // Serialises in the transformers 5.x form.
  std::string ToJsonString() const;
};

}  // namespace plm
