// Errors of the HTTP API, in OpenAI's format: {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <stdexcept>
#include <string>

#include "core/json.h"
#include "plm/error.h"

namespace plm::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string code, const std::string& message,
           std::string param = "")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        code(std::move(code)),
        param(std::move(param)) {}

  int status;
  std::string type;
  std::string code;
  std::string param;

  Json ToJson() const;
};

// 400 invalid_request_error.
ApiError BadRequest(const std::string& message, const std::string& param = "",
                    const std::string& code = "invalid_value");
// 413: a configured limit was exceeded.
ApiError TooLarge(const std::string& message, const std::string& param = "");

// The HTTP status and OpenAI error of a libplm error raised while handling a request: user errors
// (bad media, context overflow, unsupported input) are 4xx, internal ones 500.
ApiError FromPlmError(const Error& e);

}  // namespace plm::server
