#include "model_resolver.h"

#include <sys/stat.h>

#include "plm/error.h"

namespace plm::cli {

std::string ResolveModel(const std::string& model,
                         const std::function<void(const std::string&)>& /*status*/) {
  struct stat st;
  if (::stat(model.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw Error(ErrorCode::kInvalidArgument, model + ": is not a model folder");
    const std::string cfg = model + "/config.json";
    if (::stat(cfg.c_str(), &st) != 0)
      throw Error(ErrorCode::kNotFound,
                  model + ": no config.json (not a Hugging Face model folder)");
    return model;
  }
  throw Error(ErrorCode::kNotFound, model + ": no such model folder");
}

}  // namespace plm::cli
