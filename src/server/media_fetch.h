// Media of a chat request → ContentParts: base64 data: URLs, http(s):// URLs fetched with size and
// time limits, and local paths only inside the folders the server allows.
#pragma once

#include "plm/processor.h"
#include "server/openai_api.h"
#include "server/server_options.h"

namespace plm::server {

// Fills the media parts of `request.chat.conversation` named by `request.media`. Throws ApiError:
// 400 for bad URLs, unreachable hosts, HTTP errors and forbidden paths, 413 over the byte limits.
void FetchMedia(ParsedChatRequest* request, const ServerOptions& options);

// Base64 (standard or URL-safe alphabet, padding optional, whitespace ignored) → bytes; throws
// ApiError 400 naming `param` on a bad character.
std::vector<uint8_t> DecodeBase64(std::string_view text, const std::string& param);

}  // namespace plm::server
