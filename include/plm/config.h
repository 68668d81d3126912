// PerceptionLMConfig and its sub-configs (`text_config`: LlamaConfig, `vision_config`:
// TimmWrapperConfig), read from and written to a Hugging Face `config.json`.
//
// Every field of the reference configs is a public member (read it, set it, save it). Keys this
// struct does not model are kept verbatim in the `extra` maps (JSON text) and written back, so a
// load + save keeps the whole file. Both forms found in the wild load: transformers 5.x
// (`rope_parameters`, `dtype`) and 4.x (`rope_theta` + `rope_scaling`, `torch_dtype`); saving
// always writes the 5.x form. The vision tower is a timm Perception Encoder whose per-architecture
// defaults are resolved on load, then overridden by `model_args`; saving writes the resolved
// values into `model_args`.
//
//   plm::PerceptionLMConfig cfg = plm::PerceptionLMConfig::FromFile("model/config.json");
//   std::printf("%lld layers\n", (long long)cfg.text.num_hidden_layers);
//   cfg.text.max_position_embeddings = 4096;
//   cfg.SaveToFile("copy/config.json");  // validates first
#pragma once

#include <cstdint>
#include <map>
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

  bool operator==(const RopeConfig&) const = default;
};

// Keys a config object has that these structs do not model: key -> the value as compact JSON
// text (e.g. {"transformers_version", "\"5.17.0\""}). Loaded and saved as they are.
using ExtraConfigKeys = std::map<std::string, std::string>;

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
  RopeConfig rope;            // `rope_parameters`
  double initializer_range = 0.02;
  bool use_cache = true;
  int64_t pretraining_tp = 1;
  double attention_dropout = 0.0;  // training only
  ExtraConfigKeys extra;

  bool operator==(const TextConfig&) const = default;
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
  double layer_norm_eps = 1e-5;  // timm's fixed LayerNorm eps: not a config.json key, not saved
  std::string global_pool;
  // TimmWrapperConfig fields outside `model_args` (not used for inference).
  double initializer_range = 0.02;
  bool do_pooling = true;
  int64_t num_classes = -1;              // -1: absent
  std::vector<std::string> label_names;  // empty: absent
  ExtraConfigKeys model_args_extra;      // other `model_args` keys
  ExtraConfigKeys extra;                 // other `vision_config` keys (e.g. pretrained_cfg)

  bool operator==(const VisionConfig&) const = default;

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
  bool tie_word_embeddings = true;  // top level; absent in the file: text.tie_word_embeddings
  TextConfig text;                  // `text_config`
  VisionConfig vision;              // `vision_config`
  ExtraConfigKeys extra;            // other top-level keys (e.g. transformers_version)

  bool operator==(const PerceptionLMConfig&) const = default;

  // Vision tokens per tile after the projector's pooling.
  int64_t TokensPerTile() const;

  // Parses a config.json; throws plm::Error naming the file and the key on a bad or
  // unsupported config (architecture, rope type, shapes that do not divide).
  static PerceptionLMConfig FromFile(const std::string& path);
  static PerceptionLMConfig FromJsonString(const std::string& text, const std::string& what);
  // Throws plm::Error (kCorrupt / kUnsupported) when the fields do not describe a model this
  // engine can run: the checks FromFile applies, for a config built or edited in code.
  void Validate() const;
  // Serialises in the transformers 5.x form (keys sorted); FromJsonString of the result gives
  // an equal config.
  std::string ToJsonString() const;
  // Validates, then writes ToJsonString() to `path` (save_pretrained writes <dir>/config.json).
  // Throws kIo when the file cannot be written.
  void SaveToFile(const std::string& path) const;
};

}  // namespace plm
