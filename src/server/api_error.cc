#include "server/api_error.h"

namespace plm::server {

Json ApiError::ToJson() const {
  Json e = {{"message", what()}, {"type", type}, {"code", code}};
  e["param"] = param.empty() ? Json(nullptr) : Json(param);
  return Json{{"error", e}};
}

ApiError BadRequest(const std::string& message, const std::string& param, const std::string& code) {
  return ApiError(400, "invalid_request_error", code, message, param);
}

ApiError TooLarge(const std::string& message, const std::string& param) {
  return ApiError(413, "invalid_request_error", "limit_exceeded", message, param);
}

ApiError FromPlmError(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidArgument:
      return BadRequest(e.what());
    case ErrorCode::kNotFound:
      return BadRequest(e.what(), "", "not_found");
    case ErrorCode::kCorrupt:
      return BadRequest(e.what(), "", "invalid_media");
    case ErrorCode::kUnsupported:
      return BadRequest(e.what(), "", "unsupported");
    case ErrorCode::kContextOverflow:
      return BadRequest(e.what(), "messages", "context_length_exceeded");
    case ErrorCode::kIo:
      return BadRequest(e.what(), "", "media_unavailable");
    case ErrorCode::kLimit:
      return TooLarge(e.what());
    case ErrorCode::kInternal:
      break;
  }
  return ApiError(500, "server_error", "internal_error", e.what());
}

}  // namespace plm::server
