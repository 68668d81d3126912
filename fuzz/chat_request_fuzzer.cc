// libFuzzer target for the server's /v1/chat/completions body parser: arbitrary bytes are either
// a parsed request within the limits or an ApiError with a 4xx status; nothing else escapes, and
// nothing crashes or leaks.
#include <cstddef>
#include <cstdint>
#include <string>

#include "plm/error.h"
#include "server/api_error.h"
#include "server/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  plm::server::ServerOptions options;
  options.allowed_media_dirs = {"/tmp/allowed"};
  const plm::GenerationConfig defaults;
  try {
    const plm::server::ParsedChatRequest r = plm::server::ParseChatRequest(body, options, defaults);
    if (r.chat.generation.max_new_tokens < 0 ||
        r.chat.generation.max_new_tokens > options.limits.max_tokens)
      __builtin_trap();
    if (r.media.size() > static_cast<size_t>(options.limits.max_media)) __builtin_trap();
    for (const auto& m : r.media)
      if (m.message >= r.chat.conversation.size() ||
          m.part >= r.chat.conversation[m.message].content.size())
        __builtin_trap();
  } catch (const plm::server::ApiError& e) {
    if (e.status < 400 || e.status >= 500) __builtin_trap();
  }
  return 0;
}
