#include "text/tokenizer.h"

#include <algorithm>
#include <cstdlib>

#include "core/mapped_file.h"
#include "plm/error.h"
#include "text/added_vocabulary.h"
#include "text/bpe_model.h"
#include "text/byte_level.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace plm {

namespace {

std::string TypeOf(const Json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string())
    return j["type"].get<std::string>();
  return "";
}

// A special-token entry of tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> ConfigTokenString(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

// The id is assigned later (see add_batch in FromJson); `index` only names the entry.
AddedToken AddedTokenFromJson(const Json& e, size_t index, const std::string& what) {
  if (!e.is_object() || !e.contains("content") || !e["content"].is_string())
    throw Error(ErrorCode::kCorrupt,
                what + ": added token " + std::to_string(index) + " without a string \"content\"");
  AddedToken t;
  t.content = e["content"].get<std::string>();
  ValidateUtf8(t.content, what + ": added token content");
  t.single_word = JsonBoolOr(e, "single_word", false, what);
  t.lstrip = JsonBoolOr(e, "lstrip", false, what);
  t.rstrip = JsonBoolOr(e, "rstrip", false, what);
  t.special = JsonBoolOr(e, "special", false, what);
  t.normalized = JsonBoolOr(e, "normalized", !t.special, what);
  return t;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::FromDirectory(const std::string& model_dir) {
  const std::string config = model_dir + "/tokenizer_config.json";
  FILE* f = std::fopen(config.c_str(), "rb");
  const bool has_config = f != nullptr;
  if (f != nullptr) std::fclose(f);
  return FromFiles(model_dir + "/tokenizer.json", has_config ? config : std::string());
}

Tokenizer Tokenizer::FromFiles(const std::string& tokenizer_json_path,
                               const std::string& config_path) {
  const Json tok = ReadJsonFile(tokenizer_json_path);
  const Json config = config_path.empty() ? Json::object() : ReadJsonFile(config_path);
  if (!config.is_object())
    throw Error(ErrorCode::kCorrupt, config_path + ": expected a JSON object");
  return FromJson(tok, config, tokenizer_json_path);
}

Tokenizer Tokenizer::FromJson(const Json& tj, const Json& config, const std::string& what) {
  if (!tj.is_object()) throw Error(ErrorCode::kCorrupt, what + ": expected a JSON object");
  Tokenizer t;
  t.config_ = config.is_object() ? config : Json::object();

  if (tj.contains("normalizer") && !tj["normalizer"].is_null())
    throw Error(ErrorCode::kUnsupported, what + ": normalizer \"" + TypeOf(tj["normalizer"]) +
                                             "\" is not supported (byte-level BPE only)");
  if (!tj.contains("model")) throw Error(ErrorCode::kCorrupt, what + ": missing \"model\"");
  t.model_ = BpeModel::FromJson(tj["model"], what);
  t.pre_tokenizer_ = std::make_unique<PreTokenizer>(
      PreTokenizer::FromJson(tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : Json(), what));
  const Json decoder = tj.contains("decoder") ? tj["decoder"] : Json();
  if (TypeOf(decoder) != "ByteLevel")
    throw Error(ErrorCode::kUnsupported, what + ": decoder \"" +
                                             (decoder.is_null() ? "null" : TypeOf(decoder)) +
                                             "\" is not supported (ByteLevel only)");
  if (!t.pre_tokenizer_->byte_level())
    throw Error(ErrorCode::kUnsupported,
                what + ": pre_tokenizer has no ByteLevel step (byte-level BPE only)");

  // Added tokens: tokenizer.json first, then any extra ones from tokenizer_config.json.
  // tokenizers does not trust the "id" written next to an added token: add_tokens gives a
  // token whose content is already known that id, and a new one the next free id.
  t.added_ = std::make_unique<AddedVocabulary>();
  auto add_batch = [&](const std::vector<AddedToken>& batch) {
    const auto model_size = static_cast<int64_t>(t.model_->vocab_size());
    int64_t max_added = -1;
    for (const AddedToken& a : t.added_->tokens()) max_added = std::max<int64_t>(max_added, a.id);
    int64_t next_id = max_added < 0                                  ? model_size
                      : (max_added >= model_size || model_size == 0) ? max_added + 1
                                                                     : model_size;
    for (AddedToken token : batch) {
      if (token.content.empty()) continue;
      const AddedToken* known = t.added_->FindByContent(token.content);
      int64_t id = known != nullptr ? known->id : t.model_->TokenToId(token.content);
      if (id < 0) id = next_id++;
      if (id > INT32_MAX) throw Error(ErrorCode::kLimit, what + ": too many added tokens");
      token.id = static_cast<int32_t>(id);
      t.added_->Add(token);
    }
  };
  std::vector<AddedToken> batch;
  if (tj.contains("added_tokens") && !tj["added_tokens"].is_null()) {
    if (!tj["added_tokens"].is_array())
      throw Error(ErrorCode::kCorrupt, what + ": \"added_tokens\" must be an array");
    for (const Json& e : tj["added_tokens"])
      batch.push_back(AddedTokenFromJson(e, batch.size(), what));
  }
  add_batch(batch);
  batch.clear();
  if (t.config_.contains("added_tokens_decoder") && t.config_["added_tokens_decoder"].is_object()) {
    // transformers adds them in id order (the keys are ids written as strings).
    std::vector<std::pair<int64_t, const Json*>> entries;
    for (const auto& [key, e] : t.config_["added_tokens_decoder"].items()) {
      char* end = nullptr;
      const long long id = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0')
        throw Error(ErrorCode::kCorrupt,
                    "tokenizer_config.json: added_tokens_decoder key \"" + key + "\" is not an id");
      entries.emplace_back(id, &e);
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const auto& [id, e] : entries) {
      AddedToken a = AddedTokenFromJson(*e, static_cast<size_t>(id), "tokenizer_config.json");
      if (t.added_->FindByContent(a.content) == nullptr) batch.push_back(a);
    }
  }
  add_batch(batch);
  t.added_->Finalize();

  t.special_map_ = SpecialTokensMapFromConfig(t.config_);
  auto named = [&](const char* key, std::string* token, int32_t* id) {
    auto it = t.special_map_.find(key);
    if (it == t.special_map_.end()) return;
    *token = it->second;
    *id = t.TokenToId(*token);
  };
  named("bos_token", &t.bos_token_, &t.bos_id_);
  named("eos_token", &t.eos_token_, &t.eos_id_);
  named("pad_token", &t.pad_token_, &t.pad_id_);

  t.clean_up_default_ =
      JsonBoolOr(t.config_, "clean_up_tokenization_spaces", false, "tokenizer_config.json");
  t.clean_up_for_bpe_ = JsonBoolOr(
      t.config_, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", false,
      "tokenizer_config.json");
  t.split_special_tokens_ =
      JsonBoolOr(t.config_, "split_special_tokens", false, "tokenizer_config.json");

  // Post-processor. transformers replaces it when the config names add_bos_token or
  // add_eos_token explicitly.
  const bool explicit_flags =
      t.config_.contains("add_bos_token") || t.config_.contains("add_eos_token");
  const Json post = tj.contains("post_processor") ? tj["post_processor"] : Json();
  if (explicit_flags || post.is_null()) {
    const bool add_bos =
        JsonBoolOr(t.config_, "add_bos_token", false, "tokenizer_config.json") && t.bos_id_ >= 0;
    const bool add_eos =
        JsonBoolOr(t.config_, "add_eos_token", false, "tokenizer_config.json") && t.eos_id_ >= 0;
    if (add_bos) t.post_single_.push_back({{t.bos_id_}, false});
    t.post_single_.push_back({{}, true});
    if (add_eos) t.post_single_.push_back({{t.eos_id_}, false});
    t.has_post_processor_ = true;
  } else {
    std::vector<const Json*> stack{&post};
    std::vector<const Json*> steps;
    while (!stack.empty()) {
      const Json* p = stack.back();
      stack.pop_back();
      if (TypeOf(*p) == "Sequence") {
        if (!p->contains("processors") || !(*p)["processors"].is_array())
          throw Error(ErrorCode::kCorrupt, what + ": Sequence post_processor without processors");
        const Json& list = (*p)["processors"];
        for (auto it = list.rbegin(); it != list.rend(); ++it) stack.push_back(&*it);
      } else {
        steps.push_back(p);
      }
    }
    for (const Json* p : steps) {
      const std::string type = TypeOf(*p);
      if (type == "ByteLevel") continue;  // only adjusts offsets
      if (type != "TemplateProcessing")
        throw Error(ErrorCode::kUnsupported,
                    what + ": post_processor \"" + type + "\" is not supported");
      if (t.has_post_processor_)
        throw Error(ErrorCode::kUnsupported, what + ": more than one TemplateProcessing");
      if (!p->contains("single") || !(*p)["single"].is_array())
        throw Error(ErrorCode::kCorrupt, what + ": TemplateProcessing without \"single\"");
      const Json specials = p->contains("special_tokens") ? (*p)["special_tokens"] : Json::object();
      for (const Json& piece : (*p)["single"]) {
        if (piece.contains("Sequence")) {
          t.post_single_.push_back({{}, true});
        } else if (piece.contains("SpecialToken") && piece["SpecialToken"].contains("id") &&
                   piece["SpecialToken"]["id"].is_string()) {
          const std::string name = piece["SpecialToken"]["id"].get<std::string>();
          if (!specials.contains(name) || !specials[name].contains("ids") ||
              !specials[name]["ids"].is_array())
            throw Error(ErrorCode::kCorrupt,
                        what + ": TemplateProcessing special token \"" + name + "\" has no ids");
          PostStep step;
          for (const Json& id : specials[name]["ids"]) {
            if (!id.is_number_integer())
              throw Error(ErrorCode::kCorrupt, what + ": TemplateProcessing id must be an integer");
            step.ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
          }
          t.post_single_.push_back(std::move(step));
        } else {
          throw Error(ErrorCode::kCorrupt, what +
                                               ": TemplateProcessing piece must be Sequence "
                                               "or SpecialToken");
        }
      }
      t.has_post_processor_ = true;
    }
  }
  return t;
}

std::map<std::string, std::string> SpecialTokensMapFromConfig(const Json& config) {
  std::map<std::string, std::string> out;
  if (!config.is_object()) return out;
  for (const auto& [key, value] : config.items()) {
    if (key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0) {
      if (auto s = ConfigTokenString(value)) out[key] = *s;
    }
  }
  if (config.contains("extra_special_tokens") && config["extra_special_tokens"].is_object()) {
    for (const auto& [key, value] : config["extra_special_tokens"].items())
      if (auto s = ConfigTokenString(value)) out[key] = *s;
  }
  return out;
}

void Tokenizer::EncodeInto(std::string_view text, std::vector<int32_t>* ids) const {
  std::vector<TextSegment> raw_segments, norm_segments;
  std::vector<std::string_view> words;
  std::vector<std::unique_ptr<std::string>> arena;
  const bool match_special = !split_special_tokens_;
  added_->Split(text, /*normalized=*/false, match_special, &raw_segments);
  for (const TextSegment& seg : raw_segments) {
    if (seg.id >= 0) {
      ids->push_back(seg.id);
      continue;
    }
    // There is no normalizer, so the normalized pass sees the same text.
    const std::string_view piece = text.substr(seg.begin, seg.end - seg.begin);
    added_->Split(piece, /*normalized=*/true, match_special, &norm_segments);
    for (const TextSegment& sub : norm_segments) {
      if (sub.id >= 0) {
        ids->push_back(sub.id);
        continue;
      }
      arena.clear();
      pre_tokenizer_->Split(piece.substr(sub.begin, sub.end - sub.begin), &words, &arena);
      for (std::string_view w : words) model_->Tokenize(w, ids);
    }
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  ValidateUtf8(text, "tokenizer input");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (!add_special_tokens || !has_post_processor_) {
    EncodeInto(text, &ids);
    return ids;
  }
  for (const PostStep& step : post_single_) {
    if (step.is_sequence)
      EncodeInto(text, &ids);
    else
      ids.insert(ids.end(), step.ids.begin(), step.ids.end());
  }
  return ids;
}

std::vector<std::string> Tokenizer::Tokenize(std::string_view text, bool add_special_tokens) const {
  std::vector<std::string> out;
  for (int32_t id : Encode(text, add_special_tokens)) {
    auto tok = IdToToken(id);
    out.push_back(tok ? *tok : std::string());
  }
  return out;
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* a = added_->FindByContent(token)) return a->id;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* a = added_->FindById(id)) return a->content;
  if (const std::string* s = model_->IdToToken(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* a = added_->FindById(id);
  return a != nullptr && a->special;
}

size_t Tokenizer::vocab_size() const {
  int64_t limit = model_->id_limit();
  for (const AddedToken& a : added_->tokens()) limit = std::max<int64_t>(limit, a.id + 1);
  return static_cast<size_t>(limit);
}

bool Tokenizer::EffectiveCleanup(std::optional<bool> requested) const {
  // transformers 5 skips the cleanup for BPE models: it is destructive for them.
  return requested.value_or(clean_up_default_) && clean_up_for_bpe_;
}

bool Tokenizer::clean_up_tokenization_spaces() const {
  return EffectiveCleanup(std::nullopt);
}

bool Tokenizer::AppendTokenBytes(int32_t id, bool skip_special_tokens, std::string* bytes) const {
  if (id < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "cannot decode negative token id " + std::to_string(id));
  const std::string* token = nullptr;
  if (const AddedToken* a = added_->FindById(id)) {
    // tokenizers skips by content: any token whose text is a special token's text.
    if (skip_special_tokens && a->special) return true;
    token = &a->content;
  } else {
    token = model_->IdToToken(id);
    if (token == nullptr) return false;
    if (skip_special_tokens) {
      const AddedToken* same = added_->FindByContent(*token);
      if (same != nullptr && same->special) return true;
    }
  }
  ByteLevelDecodeToken(*token, bytes);
  return true;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens,
                              std::optional<bool> clean_up_tokenization_spaces) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0)
      throw Error(ErrorCode::kInvalidArgument, "cannot decode negative token id " +
                                                   std::to_string(ids[i]) + " at position " +
                                                   std::to_string(i));
    AppendTokenBytes(ids[i], skip_special_tokens, &bytes);
  }
  std::string text = Utf8Lossy(bytes);
  if (EffectiveCleanup(clean_up_tokenization_spaces)) text = CleanUpTokenizationSpaces(text);
  return text;
}

std::string CleanUpTokenizationSpaces(std::string_view text) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string s(text);
  std::string out;
  for (const auto& [from, to] : kRules) {
    if (s.find(from) == std::string::npos) continue;
    out.clear();
    size_t pos = 0;
    size_t hit;
    while ((hit = s.find(from, pos)) != std::string::npos) {
      out.append(s, pos, hit - pos);
      out.append(to);
      pos = hit + from.size();
    }
    out.append(s, pos, std::string::npos);
    s.swap(out);
  }
  return s;
}

}  // namespace plm
