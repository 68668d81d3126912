// Chat templates as transformers applies them (processor.apply_chat_template).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/json.h"

namespace plm {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // Finds the template of a model folder. Search order (the first hit wins), mirroring
  // transformers' processor loading with the tokenizer as fallback:
  //   1. processor_config.json, key "chat_template"
  //   2. chat_template.json, key "chat_template" (legacy processor file)
  //   3. chat_template.jinja, or chat_templates/<name>.jinja when `name` is given
  //   4. tokenizer_config.json, key "chat_template": a string, or a list of
  //      {"name", "template"} entries (`name`, else "default")
  // bos_token, eos_token and the other named special tokens of tokenizer_config.json (when
  // present) become template variables, as transformers passes special_tokens_map.
  // Throws kNotFound naming the folder when no template exists.
  static ChatTemplate FromDirectory(const std::string& model_dir, const std::string& name = "");
  // A template given as text; `special_tokens` become template variables.
  static ChatTemplate FromString(const std::string& source,
                                 const std::map<std::string, std::string>& special_tokens = {},
                                 const std::string& what = "chat template");

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // Renders `messages` (a JSON array of {"role", "content"} objects; content a string or a
  // list of parts such as {"type": "text", "text": ...}, {"type": "image"}, {"type": "video"}).
  // Template variables: messages, add_generation_prompt, tools/documents (none), the special
  // tokens, then `extra_context` entries (which win). Errors are plm::Error (see
  // jinja::Template::Render); a template's raise_exception() gives kInvalidArgument.
  // Object keys keep the order of an ordered_json input; plm::Json input is sorted by key,
  // which only matters for templates that print whole objects (tojson, str of a dict).
  std::string Render(
      const nlohmann::ordered_json& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;
  std::string Render(const Json& messages, bool add_generation_prompt,
                     const Json& extra_context = Json::object()) const;

  const std::string& source() const { return source_; }
  // Where the template came from (file path and key), for messages.
  const std::string& origin() const { return origin_; }

 private:
  ChatTemplate() = default;
  std::string source_;
  std::string origin_;
  std::map<std::string, std::string> special_tokens_;
  std::unique_ptr<jinja::Template> template_;
};

}  // namespace plm
