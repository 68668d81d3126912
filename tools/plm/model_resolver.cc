#include "model_resolver.h"

#include <sys/stat.h>

#include "io/hub_download.h"
#include "io/hub_options.h"
#include "plm/error.h"

namespace plm::cli {

std::string ResolveModel(const std::string& model,
                         const std::function<void(const std::string&)>& status) {
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
  if (!LooksLikeHubId(model))
    throw Error(ErrorCode::kNotFound,
                model + ": no such model folder (and not a Hub id like org/name)");
  // A Hub id: download (or reuse) the snapshot in the Hugging Face cache.
  HubOptions options = HubOptionsFromEnvironment();
  options.on_progress = [&status](const std::string& file, int64_t done, int64_t total) {
    if (!status) return;
    char buf[160];
    if (total > 0) {
      std::snprintf(
          buf, sizeof buf, "downloading %s: %.1f / %.1f MiB (%d%%)", file.c_str(), done / 1048576.0,
          total / 1048576.0,
          static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)));
    } else {
      std::snprintf(buf, sizeof buf, "downloading %s: %.1f MiB", file.c_str(), done / 1048576.0);
    }
    status(buf);
  };
  return DownloadModel(model, options);
}

}  // namespace plm::cli
