#include "plm/config.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "core/json.h"
#include "core/mapped_file.h"
#include "plm/error.h"

namespace plm {

namespace {

[[noreturn]] void Bad(const std::string& what, const std::string& msg) {
  throw Error(ErrorCode::kCorrupt, what + ": " + msg);
}

[[noreturn]] void Unsupported(const std::string& what, const std::string& msg) {
  throw Error(ErrorCode::kUnsupported, what + ": " + msg);
}

const Json& Object(const Json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) Bad(what, std::string("missing object \"") + key + "\"");
  return *it;
}

// The keys of `j` not in `known`, as JSON text.
ExtraConfigKeys Extras(const Json& j, const std::set<std::string>& known) {
  ExtraConfigKeys out;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) out[it.key()] = it->dump();
  return out;
}

// Writes the extra keys back; a key that is also modelled keeps the modelled value.
void PutExtras(const ExtraConfigKeys& extra, Json* j, const std::string& what) {
  for (const auto& [k, text] : extra) {
    if (j->contains(k)) continue;
    (*j)[k] = ParseJson(text, what + " extra key \"" + k + "\"");
  }
}

std::vector<int64_t> IntList(const Json& j, const char* key, const std::string& what) {
  std::vector<int64_t> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (it->is_number_integer()) return {it->get<int64_t>()};
  if (!it->is_array()) Bad(what, std::string("\"") + key + "\" must be an integer or a list");
  for (const auto& e : *it) {
    if (!e.is_number_integer()) Bad(what, std::string("\"") + key + "\" must hold integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

void ParseRope(const Json& tc, RopeConfig* rope, const std::string& what) {
  // transformers 5.x: rope_parameters holds everything; 4.x: rope_theta + rope_scaling.
  const Json* params = nullptr;
  auto rp = tc.find("rope_parameters");
  if (rp != tc.end() && rp->is_object()) params = &*rp;
  auto rs = tc.find("rope_scaling");
  if (params == nullptr && rs != tc.end() && rs->is_object()) params = &*rs;
  rope->rope_theta = JsonNumberOr(tc, "rope_theta", 10000.0, what);
  if (params == nullptr) {
    rope->rope_type = "default";
    return;
  }
  const std::string w = what + " rope parameters";
  rope->rope_theta = JsonNumberOr(*params, "rope_theta", rope->rope_theta, w);
  std::string type = JsonStringOr(*params, "rope_type", "", w);
  if (type.empty()) type = JsonStringOr(*params, "type", "default", w);
  rope->rope_type = type;
  if (type != "llama3") return;  // Validate() rejects other types than "default"
  rope->factor = JsonNumber(*params, "factor", w);
  rope->low_freq_factor = JsonNumber(*params, "low_freq_factor", w);
  rope->high_freq_factor = JsonNumber(*params, "high_freq_factor", w);
  rope->original_max_position_embeddings = JsonInt(*params, "original_max_position_embeddings", w);
}

void ParseText(const Json& tc, TextConfig* t, const std::string& what) {
  t->model_type = JsonStringOr(tc, "model_type", "llama", what);
  if (t->model_type != "llama")
    Unsupported(what, "unsupported text model_type \"" + t->model_type + "\" (supported: llama)");
  t->vocab_size = JsonInt(tc, "vocab_size", what);
  t->hidden_size = JsonInt(tc, "hidden_size", what);
  t->intermediate_size = JsonInt(tc, "intermediate_size", what);
  t->num_hidden_layers = JsonInt(tc, "num_hidden_layers", what);
  t->num_attention_heads = JsonInt(tc, "num_attention_heads", what);
  t->num_key_value_heads = JsonIntOr(tc, "num_key_value_heads", t->num_attention_heads, what);
  if (t->num_attention_heads <= 0) Bad(what, "text_config sizes must be positive");
  t->head_dim = JsonIntOr(tc, "head_dim", t->hidden_size / t->num_attention_heads, what);
  t->rms_norm_eps = JsonNumberOr(tc, "rms_norm_eps", 1e-6, what);
  t->max_position_embeddings = JsonIntOr(tc, "max_position_embeddings", 2048, what);
  t->tie_word_embeddings = JsonBoolOr(tc, "tie_word_embeddings", true, what);
  t->attention_bias = JsonBoolOr(tc, "attention_bias", false, what);
  t->mlp_bias = JsonBoolOr(tc, "mlp_bias", false, what);
  t->hidden_act = JsonStringOr(tc, "hidden_act", "silu", what);
  t->bos_token_id = JsonIntOr(tc, "bos_token_id", 128000, what);
  t->eos_token_ids = IntList(tc, "eos_token_id", what);
  t->pad_token_id = JsonIntOr(tc, "pad_token_id", -1, what);
  t->initializer_range = JsonNumberOr(tc, "initializer_range", 0.02, what);
  t->use_cache = JsonBoolOr(tc, "use_cache", true, what);
  t->pretraining_tp = JsonIntOr(tc, "pretraining_tp", 1, what);
  t->attention_dropout = JsonNumberOr(tc, "attention_dropout", 0.0, what);
  ParseRope(tc, &t->rope, what);
  t->extra = Extras(tc, {"model_type",
                         "vocab_size",
                         "hidden_size",
                         "intermediate_size",
                         "num_hidden_layers",
                         "num_attention_heads",
                         "num_key_value_heads",
                         "head_dim",
                         "rms_norm_eps",
                         "max_position_embeddings",
                         "tie_word_embeddings",
                         "attention_bias",
                         "mlp_bias",
                         "hidden_act",
                         "bos_token_id",
                         "eos_token_id",
                         "pad_token_id",
                         "initializer_range",
                         "use_cache",
                         "pretraining_tp",
                         "attention_dropout",
                         "rope_parameters",
                         "rope_scaling",
                         "rope_theta"});
}

// timm defaults of the Perception Encoder model functions (timm/models/eva.py) for the
// architectures PerceptionLM uses; `model_args` overrides them afterwards.
void ArchitectureDefaults(const std::string& arch, VisionConfig* v, std::string* global_pool,
                          const std::string& what) {
  if (arch == "vit_pe_core_large_patch14_336") {
    v->patch_size = 14;
    v->embed_dim = 1024;
    v->depth = 24;
    v->num_heads = 16;
    v->mlp_ratio = 4.0;
    v->img_height = v->img_width = 336;
    v->class_token = true;
    v->rope_grid_offset = 1.0;
    v->ref_feat_h = v->ref_feat_w = 24;
    *global_pool = "map";
  } else if (arch == "vit_pe_core_gigantic_patch14_448") {
    v->patch_size = 14;
    v->embed_dim = 1536;
    v->depth = 50;
    v->num_heads = 16;
    v->mlp_ratio = 8960.0 / 1536.0;
    v->img_height = v->img_width = 448;
    v->class_token = false;
    v->rope_grid_offset = 0.0;
    v->ref_feat_h = v->ref_feat_w = 32;
    *global_pool = "map";
  } else {
    Unsupported(
        what,
        "unsupported vision architecture \"" + arch +
            "\" (supported: vit_pe_core_large_patch14_336, vit_pe_core_gigantic_patch14_448)");
  }
  // Shared by both model functions and the Eva class defaults.
  v->use_abs_pos_emb = true;
  v->use_rot_pos_emb = true;
  v->use_pre_transformer_norm = true;
  v->qkv_bias = true;
  v->init_values = 0.0;  // Eva default None: no LayerScale
  v->rope_temperature = 10000.0;
  v->rope_grid_indexing = "xy";
  v->layer_norm_eps = 1e-5;
}

// model_args flags this engine does not implement: true is rejected.
const char* const kUnsupportedFlags[] = {"use_post_norm",    "scale_mlp",       "swiglu_mlp",
                                         "scale_attn_inner", "rope_mixed_mode", "dynamic_img_size",
                                         "no_embed_class"};

void ParseVision(const Json& vc, VisionConfig* v, const std::string& what) {
  const std::string mt = JsonStringOr(vc, "model_type", "timm_wrapper", what);
  if (mt != "timm_wrapper") Unsupported(what, "unsupported vision model_type \"" + mt + "\"");
  v->architecture = JsonString(vc, "architecture", what);
  std::string global_pool;
  ArchitectureDefaults(v->architecture, v, &global_pool, what);
  Json ma = Json::object();
  auto it = vc.find("model_args");
  if (it != vc.end() && it->is_object()) ma = *it;
  const std::string w = what + " vision_config.model_args";
  v->patch_size = JsonIntOr(ma, "patch_size", v->patch_size, w);
  v->embed_dim = JsonIntOr(ma, "embed_dim", v->embed_dim, w);
  v->depth = JsonIntOr(ma, "depth", v->depth, w);
  v->num_heads = JsonIntOr(ma, "num_heads", v->num_heads, w);
  v->mlp_ratio = JsonNumberOr(ma, "mlp_ratio", v->mlp_ratio, w);
  auto img = ma.find("img_size");
  if (img != ma.end() && !img->is_null()) {
    if (img->is_number_integer()) {
      v->img_height = v->img_width = img->get<int64_t>();
    } else if (img->is_array() && img->size() == 2 && (*img)[0].is_number_integer() &&
               (*img)[1].is_number_integer()) {
      v->img_height = (*img)[0].get<int64_t>();
      v->img_width = (*img)[1].get<int64_t>();
    } else {
      Bad(w, "img_size must be an integer or [height, width]");
    }
  }
  auto ref = ma.find("ref_feat_shape");
  if (ref != ma.end()) {
    if (ref->is_null()) {
      v->ref_feat_h = v->ref_feat_w = 0;
    } else if (ref->is_number_integer()) {
      v->ref_feat_h = v->ref_feat_w = ref->get<int64_t>();
    } else if (ref->is_array() && ref->size() == 2 && (*ref)[0].is_number_integer() &&
               (*ref)[1].is_number_integer()) {
      v->ref_feat_h = (*ref)[0].get<int64_t>();
      v->ref_feat_w = (*ref)[1].get<int64_t>();
    } else {
      Bad(w, "ref_feat_shape must be an integer or [height, width]");
    }
  }
  v->class_token = JsonBoolOr(ma, "class_token", v->class_token, w);
  v->use_abs_pos_emb = JsonBoolOr(ma, "use_abs_pos_emb", v->use_abs_pos_emb, w);
  v->use_rot_pos_emb = JsonBoolOr(ma, "use_rot_pos_emb", v->use_rot_pos_emb, w);
  v->use_pre_transformer_norm =
      JsonBoolOr(ma, "use_pre_transformer_norm", v->use_pre_transformer_norm, w);
  v->qkv_bias = JsonBoolOr(ma, "qkv_bias", v->qkv_bias, w);
  v->init_values = JsonNumberOr(ma, "init_values", v->init_values, w);
  v->rope_temperature = JsonNumberOr(ma, "rope_temperature", v->rope_temperature, w);
  v->rope_grid_offset = JsonNumberOr(ma, "rope_grid_offset", v->rope_grid_offset, w);
  v->rope_grid_indexing = JsonStringOr(ma, "rope_grid_indexing", v->rope_grid_indexing, w);
  global_pool = JsonStringOr(ma, "global_pool", global_pool, w);
  v->global_pool = global_pool;
  // Eva's rule: fc_norm defaults on only for avg pooling; post norm defaults to !fc_norm.
  bool fc_norm = global_pool == "avg";
  auto fcn = ma.find("use_fc_norm");
  if (fcn != ma.end() && fcn->is_boolean()) fc_norm = fcn->get<bool>();
  v->use_post_transformer_norm = JsonBoolOr(ma, "use_post_transformer_norm", !fc_norm, w);
  for (const char* k : kUnsupportedFlags) JsonBoolOr(ma, k, false, w);  // type check
  if (JsonIntOr(ma, "num_reg_tokens", 0, w) != 0)
    Unsupported(w, "register tokens are not supported");
  v->model_args_extra = Extras(
      ma, {"patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "img_size",
           "ref_feat_shape", "class_token", "use_abs_pos_emb", "use_rot_pos_emb",
           "use_pre_transformer_norm", "qkv_bias", "init_values", "rope_temperature",
           "rope_grid_offset", "rope_grid_indexing", "global_pool", "use_post_transformer_norm"});

  v->initializer_range = JsonNumberOr(vc, "initializer_range", 0.02, what);
  v->do_pooling = JsonBoolOr(vc, "do_pooling", true, what);
  v->num_classes = JsonIntOr(vc, "num_classes", -1, what);
  v->label_names.clear();
  auto ln = vc.find("label_names");
  if (ln != vc.end() && !ln->is_null()) {
    if (!ln->is_array()) Bad(what, "\"label_names\" must be a list of strings");
    for (const auto& n : *ln) {
      if (!n.is_string()) Bad(what, "\"label_names\" must be a list of strings");
      v->label_names.push_back(n.get<std::string>());
    }
  }
  v->extra = Extras(vc, {"model_type", "architecture", "model_args", "initializer_range",
                         "do_pooling", "num_classes", "label_names"});
}

void ValidateText(const TextConfig& t, const std::string& what) {
  if (t.model_type != "llama")
    Unsupported(what, "unsupported text model_type \"" + t.model_type + "\" (supported: llama)");
  if (t.num_attention_heads <= 0 || t.hidden_size <= 0 || t.num_key_value_heads <= 0 ||
      t.vocab_size <= 0 || t.intermediate_size <= 0 || t.num_hidden_layers < 0)
    Bad(what, "text_config sizes must be positive");
  if (t.head_dim <= 0 || t.head_dim % 2 != 0)
    Bad(what, "text_config.head_dim must be positive and even");
  if (t.num_attention_heads % t.num_key_value_heads != 0)
    Bad(what, "num_attention_heads (" + std::to_string(t.num_attention_heads) +
                  ") is not a multiple of num_key_value_heads (" +
                  std::to_string(t.num_key_value_heads) + ")");
  if (t.max_position_embeddings <= 0) Bad(what, "max_position_embeddings must be positive");
  if (!(t.rms_norm_eps >= 0)) Bad(what, "rms_norm_eps must be >= 0");
  if (t.attention_bias || t.mlp_bias)
    Unsupported(what, "Llama attention_bias/mlp_bias are not supported");
  if (t.hidden_act != "silu") Unsupported(what, "unsupported hidden_act \"" + t.hidden_act + "\"");
  const RopeConfig& r = t.rope;
  if (r.rope_type != "default" && r.rope_type != "llama3")
    Unsupported(what, "unsupported rope type \"" + r.rope_type + "\" (supported: default, llama3)");
  if (!(r.rope_theta > 0)) Bad(what, "rope_theta must be positive");
  if (r.rope_type == "llama3" &&
      (r.factor <= 0 || r.low_freq_factor <= 0 || r.high_freq_factor <= r.low_freq_factor ||
       r.original_max_position_embeddings <= 0))
    Bad(what,
        "invalid llama3 rope parameters (need factor > 0, high_freq_factor > low_freq_factor > 0)");
}

void ValidateVision(const VisionConfig& v, const std::string& what) {
  {
    VisionConfig scratch;
    std::string pool;
    ArchitectureDefaults(v.architecture, &scratch, &pool, what);  // throws when unsupported
  }
  const std::string w = what + " vision_config.model_args";
  for (const char* k : kUnsupportedFlags) {
    auto it = v.model_args_extra.find(k);
    if (it != v.model_args_extra.end() && it->second == "true")
      Unsupported(w, std::string(k) + "=true is not supported");
  }
  auto reg = v.model_args_extra.find("num_reg_tokens");
  if (reg != v.model_args_extra.end() && reg->second != "0" && reg->second != "null")
    Unsupported(w, "register tokens are not supported");
  if (v.rope_grid_indexing != "xy" && v.rope_grid_indexing != "ij")
    Bad(w, "rope_grid_indexing must be \"xy\" or \"ij\"");
  if (v.patch_size <= 0 || v.embed_dim <= 0 || v.num_heads <= 0 || v.depth < 0 ||
      v.img_height <= 0 || v.img_width <= 0)
    Bad(w, "vision sizes must be positive");
  if (v.embed_dim % v.num_heads != 0)
    Bad(w, "embed_dim " + std::to_string(v.embed_dim) + " is not divisible by num_heads " +
               std::to_string(v.num_heads));
  if (v.head_dim() % 4 != 0) Bad(w, "vision head_dim must be a multiple of 4 for the 2D RoPE");
  if (v.img_height % v.patch_size != 0 || v.img_width % v.patch_size != 0)
    Bad(w, "img_size is not a multiple of patch_size");
  if (!(v.mlp_ratio > 0)) Bad(w, "mlp_ratio must be positive");
  if (v.ref_feat_h < 0 || v.ref_feat_w < 0) Bad(w, "ref_feat_shape must not be negative");
  if (!v.use_abs_pos_emb || !v.use_rot_pos_emb)
    Unsupported(w, "PerceptionLM vision towers use both absolute and rotary position embeddings");
}

}  // namespace

int64_t PerceptionLMConfig::TokensPerTile() const {
  const int64_t n = vision.num_patches();
  if (projector_pooling_ratio <= 1) return n;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  const int64_t out = side / projector_pooling_ratio;
  return out * out;
}

void PerceptionLMConfig::Validate() const {
  const std::string what = "config";
  if (model_type != "perception_lm")
    Unsupported(what, "unsupported model_type \"" + model_type + "\" (expected \"perception_lm\")");
  for (const auto& a : architectures) {
    if (a != "PerceptionLMForConditionalGeneration" && a != "PerceptionLMModel")
      Unsupported(what, "unsupported architecture \"" + a + "\"");
  }
  ValidateText(text, what + " text_config");
  ValidateVision(vision, what + " vision_config");
  if (projector_pooling_ratio < 1) Bad(what, "projector_pooling_ratio must be >= 1");
  if (vision_use_cls_token && !vision.class_token)
    Bad(what, "vision_use_cls_token is true but the vision tower has no class token");
  if (projector_pooling_ratio > 1) {
    const int64_t n = vision.num_patches();
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
    if (side * side != n)
      Bad(what,
          "projector pooling needs a square patch grid, got " + std::to_string(n) + " patches");
    if (side / projector_pooling_ratio < 1)
      Bad(what, "projector_pooling_ratio is larger than the patch grid");
  }
  auto check_extras = [](const ExtraConfigKeys& extra, const std::string& where) {
    for (const auto& [k, text] : extra) ParseJson(text, where + " extra key \"" + k + "\"");
  };
  check_extras(extra, what);
  check_extras(text.extra, what + " text_config");
  check_extras(vision.extra, what + " vision_config");
  check_extras(vision.model_args_extra, what + " vision_config.model_args");
  for (int64_t id : {image_token_id, video_token_id})
    if (id < 0 || id >= text.vocab_size)
      Bad(what, "placeholder token id " + std::to_string(id) + " is outside the vocabulary");
}

PerceptionLMConfig PerceptionLMConfig::FromJsonString(const std::string& text,
                                                      const std::string& what) {
  const Json j = ParseJson(text, what);
  if (!j.is_object()) Bad(what, "config is not a JSON object");
  PerceptionLMConfig c;
  c.model_type = JsonStringOr(j, "model_type", "", what);
  if (c.model_type != "perception_lm")
    Unsupported(what,
                "unsupported model_type \"" + c.model_type + "\" (expected \"perception_lm\")");
  auto arch = j.find("architectures");
  if (arch != j.end() && arch->is_array()) {
    c.architectures.clear();
    for (const auto& a : *arch) {
      if (!a.is_string()) Bad(what, "\"architectures\" must be a list of strings");
      c.architectures.push_back(a.get<std::string>());
    }
  } else if (arch != j.end() && arch->is_null()) {
    c.architectures.clear();
  }
  c.dtype = JsonStringOr(j, "dtype", JsonStringOr(j, "torch_dtype", "bfloat16", what), what);
  c.image_token_id = JsonIntOr(j, "image_token_id", 128002, what);
  c.video_token_id = JsonIntOr(j, "video_token_id", 128003, what);
  c.projector_pooling_ratio = JsonIntOr(j, "projector_pooling_ratio", 1, what);
  c.vision_use_cls_token = JsonBoolOr(j, "vision_use_cls_token", true, what);
  ParseText(Object(j, "text_config", what), &c.text, what + " text_config");
  ParseVision(Object(j, "vision_config", what), &c.vision, what + " vision_config");
  // PerceptionLMConfig: tie_word_embeddings None -> the text config's value.
  c.tie_word_embeddings = JsonBoolOr(j, "tie_word_embeddings", c.text.tie_word_embeddings, what);
  c.extra = Extras(j, {"model_type", "architectures", "dtype", "torch_dtype", "image_token_id",
                       "video_token_id", "projector_pooling_ratio", "vision_use_cls_token",
                       "tie_word_embeddings", "text_config", "vision_config"});
  try {
    c.Validate();
  } catch (const Error& e) {
    // Name the source instead of "config".
    std::string msg = e.what();
    if (msg.rfind("config", 0) == 0) msg = what + msg.substr(6);
    throw Error(e.code(), msg);
  }
  return c;
}

PerceptionLMConfig PerceptionLMConfig::FromFile(const std::string& path) {
  return FromJsonString(ReadFileToString(path), path);
}

std::string PerceptionLMConfig::ToJsonString() const {
  const std::string what = "config";
  Json rope = {{"rope_type", text.rope.rope_type}, {"rope_theta", text.rope.rope_theta}};
  if (text.rope.rope_type == "llama3") {
    rope["factor"] = text.rope.factor;
    rope["low_freq_factor"] = text.rope.low_freq_factor;
    rope["high_freq_factor"] = text.rope.high_freq_factor;
    rope["original_max_position_embeddings"] = text.rope.original_max_position_embeddings;
  }
  Json tc = {{"model_type", text.model_type},
             {"vocab_size", text.vocab_size},
             {"hidden_size", text.hidden_size},
             {"intermediate_size", text.intermediate_size},
             {"num_hidden_layers", text.num_hidden_layers},
             {"num_attention_heads", text.num_attention_heads},
             {"num_key_value_heads", text.num_key_value_heads},
             {"head_dim", text.head_dim},
             {"rms_norm_eps", text.rms_norm_eps},
             {"max_position_embeddings", text.max_position_embeddings},
             {"tie_word_embeddings", text.tie_word_embeddings},
             {"attention_bias", text.attention_bias},
             {"mlp_bias", text.mlp_bias},
             {"hidden_act", text.hidden_act},
             {"bos_token_id", text.bos_token_id},
             {"eos_token_id", text.eos_token_ids},
             {"initializer_range", text.initializer_range},
             {"use_cache", text.use_cache},
             {"pretraining_tp", text.pretraining_tp},
             {"attention_dropout", text.attention_dropout},
             {"rope_parameters", rope}};
  if (text.pad_token_id >= 0) tc["pad_token_id"] = text.pad_token_id;
  PutExtras(text.extra, &tc, what + " text_config");
  Json ma = {{"patch_size", vision.patch_size},
             {"embed_dim", vision.embed_dim},
             {"depth", vision.depth},
             {"num_heads", vision.num_heads},
             {"mlp_ratio", vision.mlp_ratio},
             {"img_size", {vision.img_height, vision.img_width}},
             {"class_token", vision.class_token},
             {"use_abs_pos_emb", vision.use_abs_pos_emb},
             {"use_rot_pos_emb", vision.use_rot_pos_emb},
             {"use_pre_transformer_norm", vision.use_pre_transformer_norm},
             {"use_post_transformer_norm", vision.use_post_transformer_norm},
             {"qkv_bias", vision.qkv_bias},
             {"rope_temperature", vision.rope_temperature},
             {"rope_grid_offset", vision.rope_grid_offset},
             {"rope_grid_indexing", vision.rope_grid_indexing},
             {"global_pool", vision.global_pool}};
  ma["ref_feat_shape"] = vision.ref_feat_h > 0 || vision.ref_feat_w > 0
                             ? Json{vision.ref_feat_h, vision.ref_feat_w}
                             : Json(nullptr);
  // Eva: init_values None means no LayerScale (the engine's 0).
  ma["init_values"] = vision.init_values > 0 ? Json(vision.init_values) : Json(nullptr);
  PutExtras(vision.model_args_extra, &ma, what + " vision_config.model_args");
  Json vc = {{"model_type", "timm_wrapper"},
             {"architecture", vision.architecture},
             {"model_args", ma},
             {"initializer_range", vision.initializer_range},
             {"do_pooling", vision.do_pooling}};
  if (vision.num_classes >= 0) vc["num_classes"] = vision.num_classes;
  if (!vision.label_names.empty()) vc["label_names"] = vision.label_names;
  PutExtras(vision.extra, &vc, what + " vision_config");
  Json j = {{"model_type", model_type},
            {"architectures", architectures},
            {"dtype", dtype},
            {"image_token_id", image_token_id},
            {"video_token_id", video_token_id},
            {"projector_pooling_ratio", projector_pooling_ratio},
            {"vision_use_cls_token", vision_use_cls_token},
            {"tie_word_embeddings", tie_word_embeddings},
            {"text_config", tc},
            {"vision_config", vc}};
  PutExtras(extra, &j, what);
  return j.dump(2);
}

void PerceptionLMConfig::SaveToFile(const std::string& path) const {
  Validate();
  const std::string text = ToJsonString() + "\n";
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw Error(ErrorCode::kIo, path + ": cannot write the file");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(ErrorCode::kIo, path + ": cannot write the file");
  }
}

}  // namespace plm
