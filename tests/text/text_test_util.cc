#include "text_test_util.h"

#include <map>
#include <memory>
#include <mutex>

#include "core/mapped_file.h"
#include "support/test_support.h"

namespace plm::test {

std::vector<std::string> TokenizerDirs() {
  std::vector<std::string> out;
  for (const char* group : {"models", "processors"}) {
    const std::string root = FixturesDir() + "/" + group;
    for (const std::string& name : ListDir(root, /*dirs_only=*/true)) {
      const std::string dir = root + "/" + name;
      if (PathExists(dir + "/tokenizer.json")) out.push_back(dir);
    }
  }
  return out;
}

nlohmann::ordered_json ReadOrderedFixture(const std::string& name) {
  const std::string path = FixturesDir() + "/tokenizer/" + name;
  return nlohmann::ordered_json::parse(ReadFileToString(path));
}

const Tokenizer& CachedTokenizer(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[dir];
  if (!slot) slot = std::make_unique<Tokenizer>(Tokenizer::FromDirectory(dir));
  return *slot;
}

std::string Quote(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace plm::test
