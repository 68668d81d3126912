// libFuzzer target for config.json parsing (4.x and 5.x layouts, timm architecture defaults,
// model_args): arbitrary text either parses or throws plm::Error; a parsed config survives a
// save/load round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "plm/config.h"
#include "plm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const plm::PerceptionLMConfig config = plm::PerceptionLMConfig::FromJsonString(text, "fuzz");
    (void)config.TokensPerTile();
    const std::string saved = config.ToJsonString();
    const plm::PerceptionLMConfig again =
        plm::PerceptionLMConfig::FromJsonString(saved, "fuzz round trip");
    if (again.ToJsonString() != saved) __builtin_trap();
  } catch (const plm::Error&) {
  }
  return 0;
}
