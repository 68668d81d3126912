#include "server/openai_api.h"

#include <cmath>
#include <limits>
#include <random>

#include "server/api_error.h"

namespace plm::server {

namespace {

const char* TypeName(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

[[noreturn]] void WrongType(const std::string& param, const char* want, const Json& got) {
  throw BadRequest(param + " must be " + want + ", got " + TypeName(got), param, "invalid_type");
}

// Optional typed fields: absent or null → nullopt.
const Json* Field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<double> Number(const Json& obj, const char* key, double lo, double hi) {
  const Json* v = Field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) WrongType(key, "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw BadRequest(std::string(key) + " must be between " + Json(lo).dump() + " and " +
                         Json(hi).dump() + ", got " + v->dump(),
                     key);
  return d;
}

std::optional<int64_t> Integer(const Json& obj, const char* key, int64_t lo, int64_t hi) {
  const Json* v = Field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) WrongType(key, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    throw BadRequest(
        std::string(key) + " must be at most " + std::to_string(hi) + ", got " + v->dump(), key);
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi)
    throw BadRequest(std::string(key) + " must be between " + std::to_string(lo) + " and " +
                         std::to_string(hi) + ", got " + std::to_string(i),
                     key);
  return i;
}

std::optional<bool> Bool(const Json& obj, const char* key) {
  const Json* v = Field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) WrongType(key, "a boolean", *v);
  return v->get<bool>();
}

void ParseContent(const Json& content, size_t mi, const std::string& role, ParsedChatRequest* out) {
  Message& msg = out->chat.conversation.back();
  const std::string where = "messages[" + std::to_string(mi) + "].content";
  if (content.is_string()) {
    msg.content.push_back(ContentPart::Text(content.get<std::string>()));
    return;
  }
  if (content.is_null()) throw BadRequest(where + " is null; tool calls are not supported", where);
  if (!content.is_array()) WrongType(where, "a string or an array of content parts", content);
  for (size_t pi = 0; pi < content.size(); ++pi) {
    const Json& part = content[pi];
    const std::string pw = where + "[" + std::to_string(pi) + "]";
    if (!part.is_object()) WrongType(pw, "an object", part);
    const Json* type = Field(part, "type");
    if (!type) throw BadRequest(pw + ".type is missing", pw + ".type");
    if (!type->is_string()) WrongType(pw + ".type", "a string", *type);
    const std::string t = type->get<std::string>();
    if (t == "text") {
      const Json* text = Field(part, "text");
      if (!text) throw BadRequest(pw + ".text is missing", pw + ".text");
      if (!text->is_string()) WrongType(pw + ".text", "a string", *text);
      msg.content.push_back(ContentPart::Text(text->get<std::string>()));
    } else if (t == "image_url" || t == "video_url") {
      const bool video = t == "video_url";
      const Json* v = Field(part, t.c_str());
      const std::string vw = pw + "." + t;
      if (!v) throw BadRequest(vw + " is missing", vw);
      std::string url;
      if (v->is_string()) {
        url = v->get<std::string>();
      } else if (v->is_object()) {
        const Json* u = Field(*v, "url");
        if (!u) throw BadRequest(vw + ".url is missing", vw + ".url");
        if (!u->is_string()) WrongType(vw + ".url", "a string", *u);
        url = u->get<std::string>();
      } else {
        WrongType(vw, "an object with \"url\"", *v);
      }
      if (url.empty()) throw BadRequest(vw + ".url is empty", vw + ".url");
      if (role == "system")
        throw BadRequest(pw + ": system messages cannot hold images or videos", pw);
      MediaRef ref;
      ref.video = video;
      ref.url = std::move(url);
      ref.message = mi;
      ref.part = msg.content.size();
      ref.param = vw + ".url";
      out->media.push_back(std::move(ref));
      ContentPart p;
      p.type = video ? ContentPart::Type::kVideo : ContentPart::Type::kImage;
      p.name = (video ? "video " : "image ") + std::to_string(out->media.size());
      msg.content.push_back(std::move(p));
    } else {
      throw BadRequest(
          pw + ".type \"" + t + "\" is not supported (use text, image_url or video_url)",
          pw + ".type", "unsupported");
    }
  }
}

}  // namespace

ParsedChatRequest ParseChatRequest(const std::string& body, const ServerOptions& options,
                                   const GenerationConfig& defaults) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::exception& e) {
    throw BadRequest(std::string("the request body is not valid JSON: ") + e.what(), "",
                     "invalid_json");
  }
  if (!j.is_object()) WrongType("the request body", "a JSON object", j);
  ParsedChatRequest out;
  if (const Json* m = Field(j, "model")) {
    if (!m->is_string()) WrongType("model", "a string", *m);
    out.model = m->get<std::string>();
  }

  // Messages.
  const Json* msgs = Field(j, "messages");
  if (!msgs) throw BadRequest("messages is missing", "messages");
  if (!msgs->is_array()) WrongType("messages", "an array", *msgs);
  if (msgs->empty()) throw BadRequest("messages is empty", "messages");
  for (size_t mi = 0; mi < msgs->size(); ++mi) {
    const Json& m = (*msgs)[mi];
    const std::string mw = "messages[" + std::to_string(mi) + "]";
    if (!m.is_object()) WrongType(mw, "an object", m);
    const Json* role = Field(m, "role");
    if (!role) throw BadRequest(mw + ".role is missing", mw + ".role");
    if (!role->is_string()) WrongType(mw + ".role", "a string", *role);
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant")
      throw BadRequest(mw + ".role \"" + role->get<std::string>() +
                           "\" is not supported (use system, user or assistant)",
                       mw + ".role");
    if (m.contains("tool_calls") && !m["tool_calls"].is_null())
      throw BadRequest(mw + ": tool calls are not supported", mw + ".tool_calls", "unsupported");
    out.chat.conversation.push_back({r, {}});
    const auto c = m.find("content");
    if (c == m.end()) throw BadRequest(mw + ".content is missing", mw + ".content");
    ParseContent(*c, mi, r, &out);
  }
  if (static_cast<int64_t>(out.media.size()) > options.limits.max_media)
    throw TooLarge("the request has " + std::to_string(out.media.size()) +
                       " images and videos; the limit is " +
                       std::to_string(options.limits.max_media),
                   "messages");

  // Features this server does not offer.
  if (auto n = Integer(j, "n", 1, 128); n && *n != 1)
    throw BadRequest("n must be 1 (one choice per request)", "n", "unsupported");
  for (const char* k : {"tools", "functions"})
    if (const Json* v = Field(j, k); v && !(v->is_array() && v->empty()))
      throw BadRequest(std::string(k) + " are not supported", k, "unsupported");
  if (const Json* rf = Field(j, "response_format")) {
    if (!rf->is_object()) WrongType("response_format", "an object", *rf);
    const Json* t = Field(*rf, "type");
    if (!t || !t->is_string() || t->get<std::string>() != "text")
      throw BadRequest("response_format: only {\"type\": \"text\"} is supported", "response_format",
                       "unsupported");
  }
  for (const char* k : {"presence_penalty", "frequency_penalty"})
    if (auto v = Number(j, k, -2.0, 2.0); v && *v != 0.0)
      throw BadRequest(std::string(k) + " is not supported (use repetition_penalty)", k,
                       "unsupported");

  // Generation.
  GenerationConfig g = defaults;
  const int64_t max_tok = options.limits.max_tokens;
  auto mt = Integer(j, "max_completion_tokens", 1, std::numeric_limits<int64_t>::max());
  if (!mt) mt = Integer(j, "max_tokens", 1, std::numeric_limits<int64_t>::max());
  if (mt && *mt > max_tok)
    throw BadRequest("max_tokens is " + std::to_string(*mt) + "; this server allows at most " +
                         std::to_string(max_tok),
                     "max_tokens");
  out.max_tokens_given = mt.has_value();
  g.max_new_tokens = mt ? *mt : std::min(options.default_max_tokens, max_tok);
  const auto temperature = Number(j, "temperature", 0.0, 2.0);
  const auto top_p = Number(j, "top_p", 0.0, 1.0);
  const auto min_p = Number(j, "min_p", 0.0, 1.0);
  const auto top_k = Integer(j, "top_k", 0, std::numeric_limits<int32_t>::max());
  const auto rep = Number(j, "repetition_penalty", 1e-3, 100.0);
  if (top_p && *top_p == 0.0) throw BadRequest("top_p must be greater than 0", "top_p");
  // As `plm run`: any sampling parameter turns sampling on; temperature 0 means greedy.
  if (temperature || top_p || min_p || top_k) g.do_sample = true;
  if (temperature) g.temperature = static_cast<float>(*temperature);
  if (temperature && *temperature == 0.0) g.do_sample = false;
  if (top_p) g.top_p = static_cast<float>(*top_p);
  if (min_p) g.min_p = static_cast<float>(*min_p);
  if (top_k) g.top_k = *top_k;
  if (rep) g.repetition_penalty = static_cast<float>(*rep);
  if (const Json* s = Field(j, "seed")) {
    if (!s->is_number_integer()) WrongType("seed", "an integer", *s);
    g.seed =
        s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
  } else {
    g.seed = std::random_device{}();
  }
  out.chat.generation = g;

  if (const Json* stop = Field(j, "stop")) {
    std::vector<std::string> stops;
    if (stop->is_string()) {
      stops.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const auto& s : *stop) {
        if (!s.is_string()) WrongType("stop[]", "a string", s);
        stops.push_back(s.get<std::string>());
      }
    } else {
      WrongType("stop", "a string or an array of strings", *stop);
    }
    if (stops.size() > 4) throw BadRequest("stop may hold at most 4 strings", "stop");
    for (const auto& s : stops)
      if (s.empty()) throw BadRequest("stop strings must not be empty", "stop");
    out.chat.stop_strings = std::move(stops);
  }

  out.stream = Bool(j, "stream").value_or(false);
  if (const Json* so = Field(j, "stream_options")) {
    if (!so->is_object()) WrongType("stream_options", "an object", *so);
    out.include_usage = Bool(*so, "include_usage").value_or(false);
  }
  const bool logprobs = Bool(j, "logprobs").value_or(false);
  const auto top = Integer(j, "top_logprobs", 0, 20);
  if (top && !logprobs) throw BadRequest("top_logprobs needs logprobs set to true", "top_logprobs");
  if (logprobs) out.top_logprobs = top ? static_cast<int>(*top) : 0;

  // Media options (extensions).
  MediaOptions media;
  media.max_num_tiles = options.default_max_tiles;
  media.num_frames = options.default_num_frames;
  media.fps = options.default_fps;
  const int tile_cap = options.limits.max_tiles > 0 ? options.limits.max_tiles : 256;
  if (auto t = Integer(j, "max_tiles", 1, 256)) {
    if (*t > tile_cap)
      throw BadRequest("max_tiles is " + std::to_string(*t) + "; this server allows at most " +
                           std::to_string(tile_cap),
                       "max_tiles");
    media.max_num_tiles = static_cast<int>(*t);
  }
  if (options.limits.max_tiles > 0 &&
      (!media.max_num_tiles || *media.max_num_tiles > options.limits.max_tiles))
    media.max_num_tiles = options.limits.max_tiles;
  if (auto f = Integer(j, "num_frames", 1, std::numeric_limits<int32_t>::max())) {
    if (*f > options.limits.max_video_frames)
      throw BadRequest("num_frames is " + std::to_string(*f) + "; this server allows at most " +
                           std::to_string(options.limits.max_video_frames),
                       "num_frames");
    media.num_frames = *f;
    media.fps.reset();
  }
  media.max_pixels = options.limits.max_pixels;
  media.max_video_seconds = options.limits.max_video_seconds;
  media.max_video_frames = options.limits.max_video_frames;
  media.threads = options.preprocess_threads;
  out.chat.media = media;
  return out;
}

Json LogprobsJson(const std::vector<StepLogprobs>& steps, const PerceptionLMProcessor& processor) {
  auto entry = [&](int64_t token, float logprob) {
    const int64_t id = token;
    const std::string text = processor.Decode(std::span<const int64_t>(&id, 1), false);
    Json bytes = Json::array();
    for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
    return Json{{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
  };
  Json content = Json::array();
  for (const auto& s : steps) {
    Json e = entry(s.token, s.logprob);
    Json top = Json::array();
    for (const auto& t : s.top) top.push_back(entry(t.token, t.logprob));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return Json{{"content", content}, {"refusal", nullptr}};
}

std::string NewCompletionId() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "chatcmpl-";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof(kChars) - 1)];
  return id;
}

const char* OpenAiFinishReason(FinishReason r) {
  return r == FinishReason::kStop ? "stop" : "length";
}

Json UsageJson(const EngineEvent& f) {
  return Json{{"prompt_tokens", f.prompt_tokens},
              {"completion_tokens", f.completion_tokens},
              {"total_tokens", f.prompt_tokens + f.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", f.cached_tokens}}}};
}

Json CompletionJson(const ResponseContext& ctx, const EngineEvent& all,
                    const PerceptionLMProcessor& processor, bool logprobs) {
  Json choice = {{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", all.text}}},
                 {"finish_reason", OpenAiFinishReason(all.finish_reason)}};
  choice["logprobs"] = logprobs ? LogprobsJson(all.logprobs, processor) : Json(nullptr);
  return Json{{"id", ctx.id},
              {"object", "chat.completion"},
              {"created", ctx.created},
              {"model", ctx.model},
              {"system_fingerprint", ctx.fingerprint},
              {"choices", Json::array({choice})},
              {"usage", UsageJson(all)}};
}

Json ChunkJson(const ResponseContext& ctx, const Json& delta, const Json& logprobs,
               const char* finish_reason, const Json& usage) {
  Json choice = {{"index", 0}, {"delta", delta}, {"logprobs", logprobs}};
  choice["finish_reason"] = finish_reason ? Json(finish_reason) : Json(nullptr);
  Json c = {{"id", ctx.id},
            {"object", "chat.completion.chunk"},
            {"created", ctx.created},
            {"model", ctx.model},
            {"system_fingerprint", ctx.fingerprint},
            {"choices", Json::array({choice})}};
  if (!usage.is_null()) c["usage"] = usage;
  return c;
}

}  // namespace plm::server
