// Turns the user's MODEL argument into a local folder: a path as given, or a Hugging Face Hub id.
#pragma once

#include <functional>
#include <string>

namespace plm::cli {

// Returns the folder holding config.json; throws plm::Error (kNotFound) naming what was tried.
// `status` receives short progress lines (downloads).
std::string ResolveModel(const std::string& model,
                         const std::function<void(const std::string&)>& status = {});

}  // namespace plm::cli
