// libFuzzer target for the Jinja interpreter: any bytes as a chat template, rendered against a
// small conversation. Every failure must be a plm::Error; crashes, hangs past the interpreter's
// step limit, or other exceptions are bugs.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "plm/error.h"
#include "text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "  sys  "},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]},
    {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}
  ])");
  const std::string source(reinterpret_cast<const char*>(data), size);
  try {
    const plm::ChatTemplate t =
        plm::ChatTemplate::FromString(source, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
    (void)t.Render(messages, size % 2 == 0);
  } catch (const plm::Error&) {
  }
  return 0;
}
