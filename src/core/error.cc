#include "plm/error.h"

namespace plm {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kCorrupt:
      return "corrupt input";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kContextOverflow:
      return "context overflow";
    case ErrorCode::kIo:
      return "I/O error";
    case ErrorCode::kLimit:
      return "limit exceeded";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "error";
}

}  // namespace plm
