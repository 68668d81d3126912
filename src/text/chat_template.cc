#include "text/chat_template.h"

#include <sys/stat.h>

#include "core/mapped_file.h"
#include "plm/error.h"
#include "text/jinja_template.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace plm {

namespace {

// tokenizer_config.json "chat_template": a string or [{"name": ..., "template": ...}].
std::optional<std::string> TemplateFromConfigValue(const Json& v, const std::string& name,
                                                   const std::string& what) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) {
    if (!name.empty() && name != "default") return std::nullopt;
    return v.get<std::string>();
  }
  if (v.is_array()) {
    const std::string wanted = name.empty() ? "default" : name;
    for (const Json& e : v) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
          !e["name"].is_string() || !e["template"].is_string())
        throw Error(ErrorCode::kCorrupt,
                    what + ": chat_template entries must be {\"name\", \"template\"} objects");
      if (e["name"].get<std::string>() == wanted) return e["template"].get<std::string>();
    }
    return std::nullopt;
  }
  if (v.is_object()) {  // {name: template} as some processors save it
    const std::string wanted = name.empty() ? "default" : name;
    if (v.contains(wanted) && v[wanted].is_string()) return v[wanted].get<std::string>();
    return std::nullopt;
  }
  throw Error(ErrorCode::kCorrupt, what + ": \"chat_template\" must be a string or a list");
}

// Converts OpenAI-style {"type": "image_url", "image_url": {"url": u}} parts to
// {"type": "image", "url": u}, as transformers' processor does before rendering.
template <typename J>
J NormalizeMessages(const J& messages) {
  J out = messages;
  for (auto& m : out) {
    if (!m.is_object() || !m.contains("content") || !m["content"].is_array()) continue;
    for (auto& part : m["content"]) {
      if (!part.is_object() || !part.contains("type") || part["type"] != "image_url" ||
          !part.contains("image_url"))
        continue;
      const J info = part["image_url"];
      J repl = J::object();
      repl["type"] = "image";
      repl["url"] = info.is_object() ? (info.contains("url") ? info["url"] : J("")) : info;
      part = repl;
    }
  }
  return out;
}

}  // namespace

ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::FromString(const std::string& source,
                                      const std::map<std::string, std::string>& special_tokens,
                                      const std::string& what) {
  ValidateUtf8(source, what);
  ChatTemplate t;
  t.source_ = source;
  t.origin_ = what;
  t.special_tokens_ = special_tokens;
  t.template_ = std::make_unique<jinja::Template>(jinja::Template::Parse(source, what));
  return t;
}

ChatTemplate ChatTemplate::FromDirectory(const std::string& dir, const std::string& name) {
  std::map<std::string, std::string> specials;
  Json tok_config;
  const std::string tok_config_path = dir + "/tokenizer_config.json";
  if (IsRegularFile(tok_config_path)) {
    tok_config = ReadJsonFile(tok_config_path);
    specials = SpecialTokensMapFromConfig(tok_config);
  }
  const std::string proc = dir + "/processor_config.json";
  if (IsRegularFile(proc)) {
    const Json j = ReadJsonFile(proc);
    if (j.is_object() && j.contains("chat_template")) {
      if (auto s = TemplateFromConfigValue(j["chat_template"], name, proc))
        return FromString(*s, specials, proc + " (chat_template)");
    }
  }
  const std::string legacy = dir + "/chat_template.json";
  if (IsRegularFile(legacy)) {
    const Json j = ReadJsonFile(legacy);
    if (!j.is_object() || !j.contains("chat_template"))
      throw Error(ErrorCode::kCorrupt, legacy + ": missing \"chat_template\"");
    if (auto s = TemplateFromConfigValue(j["chat_template"], name, legacy))
      return FromString(*s, specials, legacy);
  }
  const std::string jinja_path = name.empty() || name == "default"
                                     ? dir + "/chat_template.jinja"
                                     : dir + "/chat_templates/" + name + ".jinja";
  if (IsRegularFile(jinja_path))
    return FromString(ReadFileToString(jinja_path), specials, jinja_path);
  if (tok_config.is_object() && tok_config.contains("chat_template")) {
    if (auto s = TemplateFromConfigValue(tok_config["chat_template"], name, tok_config_path))
      return FromString(*s, specials, tok_config_path + " (chat_template)");
  }
  throw Error(ErrorCode::kNotFound,
              dir + ": no chat template" + (name.empty() ? "" : " named \"" + name + "\"") +
                  " (looked in processor_config.json, chat_template.json, chat_template.jinja"
                  ", tokenizer_config.json)");
}

std::string ChatTemplate::Render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra_context) const {
  if (!messages.is_array())
    throw Error(ErrorCode::kInvalidArgument, origin_ + ": messages must be a JSON array");
  if (!extra_context.is_null() && !extra_context.is_object())
    throw Error(ErrorCode::kInvalidArgument, origin_ + ": extra context must be a JSON object");
  jinja::ValueDict ctx;
  ctx.Set("messages", jinja::Value::FromJson(NormalizeMessages(messages)));
  ctx.Set("tools", jinja::Value::None());
  ctx.Set("documents", jinja::Value::None());
  ctx.Set("add_generation_prompt", jinja::Value(add_generation_prompt));
  for (const auto& [k, v] : special_tokens_) ctx.Set(k, jinja::Value(v));
  if (extra_context.is_object())
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it)
      ctx.Set(it.key(), jinja::Value::FromJson(it.value()));
  return template_->Render(ctx);
}

std::string ChatTemplate::Render(const Json& messages, bool add_generation_prompt,
                                 const Json& extra_context) const {
  // nlohmann converts between the two object layouts element by element.
  const nlohmann::ordered_json m = nlohmann::ordered_json::parse(messages.dump());
  const nlohmann::ordered_json e = extra_context.is_null()
                                       ? nlohmann::ordered_json::object()
                                       : nlohmann::ordered_json::parse(extra_context.dump());
  return Render(m, add_generation_prompt, e);
}

}  // namespace plm
