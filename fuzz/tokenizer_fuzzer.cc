// libFuzzer target for the tokenizer: any bytes as prompt text. Valid UTF-8 must round-trip
// (byte-level BPE is lossless), stream-decode to the same text, and never crash; invalid UTF-8
// must be rejected with plm::Error(kInvalidArgument).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "plm/error.h"
#include "text/streaming_decoder.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

// The first fixture folder with a tokenizer.json: $PLM_FIXTURES, else ../shared/fixtures next
// to the source tree (found from this file's path or from the working directory).
std::string TokenizerDir() {
  namespace fs = std::filesystem;
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("PLM_FIXTURES"); env != nullptr && *env != '\0')
    roots.emplace_back(env);
  const fs::path source = fs::absolute(fs::path(__FILE__)).parent_path().parent_path();
  roots.push_back(source.parent_path() / "shared" / "fixtures");
  for (const char* up : {"..", "../..", "../../.."})
    roots.push_back(fs::path(up) / "shared" / "fixtures");
  for (const fs::path& root : roots) {
    for (const char* group : {"models", "processors"}) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(root / group, ec))
        if (fs::exists(e.path() / "tokenizer.json")) return e.path().string();
    }
  }
  std::fprintf(stderr, "tokenizer_fuzzer: no fixtures found; set PLM_FIXTURES\n");
  std::abort();
}

const plm::Tokenizer& Tok() {
  static const plm::Tokenizer tok = plm::Tokenizer::FromDirectory(TokenizerDir());
  return tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const plm::Tokenizer& tok = Tok();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = plm::IsValidUtf8(text);
  std::vector<int32_t> ids;
  try {
    ids = tok.Encode(text, size % 2 == 0);
  } catch (const plm::Error& e) {
    if (valid || e.code() != plm::ErrorCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (!valid) std::abort();
  const std::string decoded = tok.Decode(ids, /*skip_special_tokens=*/false);
  const std::string expected = size % 2 == 0 && tok.bos_token_id() >= 0
                                   ? tok.bos_token() + std::string(text)
                                   : std::string(text);
  if (decoded != expected) std::abort();
  plm::StreamingDecoder stream(tok, /*skip_special_tokens=*/true);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.Put(id);
    if (!plm::IsValidUtf8(piece)) std::abort();
    streamed += piece;
  }
  streamed += stream.Flush();
  if (streamed != tok.Decode(ids, /*skip_special_tokens=*/true)) std::abort();
  return 0;
}
