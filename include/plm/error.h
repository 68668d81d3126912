// Errors raised by libplm. Every failure is a plm::Error whose message names the problem
// (file, tensor, key, sizes) so front ends can print it as one line.
//
//   try {
//     auto model = plm::PerceptionLMForConditionalGeneration::FromPretrained(dir);
//   } catch (const plm::Error& e) {
//     std::fprintf(stderr, "%s (%s)\n", e.what(), plm::ErrorCodeName(e.code()));
//     return static_cast<int>(e.code());  // what the plm command exits with
//   }
#pragma once

#include <stdexcept>
#include <string>

namespace plm {

enum class ErrorCode {
  kInvalidArgument = 2,  // bad option or request (user error)
  kNotFound = 3,         // missing file, tensor, key
  kCorrupt = 4,          // malformed or truncated file contents
  kUnsupported = 5,      // valid input we do not handle (architecture, dtype, codec)
  kContextOverflow = 6,  // prompt + generation does not fit the context
  kIo = 7,               // read/write/network failure
  kLimit = 8,            // input exceeds a configured limit (pixels, duration, size)
  kInternal = 9,         // a bug in libplm
};

const char* ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace plm
