#include "server/server_test_util.h"

#include <map>
#include <mutex>
#include <stdexcept>

#include "io/image_decode.h"
#include "io/image_processor.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace plm::test {

namespace {

std::string Between(const std::string& s, const std::string& a, const std::string& b) {
  const size_t i = s.find(a);
  if (i == std::string::npos) return "";
  const size_t j = s.find(b, i + a.size());
  return j == std::string::npos ? "" : s.substr(i + a.size(), j - i - a.size());
}

std::string FindImage(const std::string& model_dir, const std::vector<float>& pixels) {
  ImageProcessor proc(ImageProcessorConfig::Load(model_dir));
  const std::string root = FixturesDir() + "/inputs";
  for (const auto& f : ListDir(root, false)) {
    try {
      const ProcessedImage p = proc.Preprocess(LoadImageFile(root + "/" + f));
      if (p.pixel_values == pixels) return root + "/" + f;
    } catch (const std::exception&) {
      // not an image
    }
  }
  return "";
}

}  // namespace

std::vector<std::string> ServerModels() {
  std::vector<std::string> out;
  const std::string root = FixturesDir() + "/models";
  for (const auto& m : ListDir(root, true))
    if (PathExists(root + "/" + m + "/config.json")) out.push_back(m);
  if (out.empty()) throw std::runtime_error("no fixture models under " + root);
  return out;
}

std::string ModelDir(const std::string& name) {
  return FixturesDir() + "/models/" + name;
}

GoldenRequest ImageGolden(const std::string& model) {
  static std::mutex mu;
  static std::map<std::string, GoldenRequest> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto it = cache.find(model);
  if (it != cache.end()) return it->second;
  const std::string dir = ModelDir(model);
  SafetensorsFile g(FixturesDir() + "/goldens/" + model + "/image.safetensors");
  GoldenRequest r;
  r.image_path = FindImage(dir, g.Get("input.pixel_values").ToF32());
  auto proc = PerceptionLMProcessor::FromPretrained(dir);
  const std::string prompt = proc->Decode(g.Get("input.input_ids").ToI64(), false);
  r.system = Between(prompt, "system<|end_header_id|>\n\n", "<|eot_id|>");
  r.user = Between(prompt, "user<|end_header_id|>\n\n", "<|eot_id|>");
  while (r.user.rfind("<|image|>", 0) == 0) r.user = r.user.substr(9);
  r.max_tokens = static_cast<int64_t>(g.Get("generated_ids").ToI64().size());
  cache[model] = r;
  return r;
}

std::shared_ptr<const Pipeline> LoadModel(const std::string& model) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Pipeline>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto& p = cache[model];
  if (!p) {
    LoadOptions lo;
    lo.threads = 2;
    p = Pipeline::FromPretrained(ModelDir(model), lo);
  }
  return p;
}

ChatRequest MakeChat(const Pipeline& pipe, const std::string& system, const std::string& user,
                     const std::vector<std::string>& images, int64_t max_tokens) {
  ChatRequest req;
  if (!system.empty()) req.conversation.push_back({"system", {ContentPart::Text(system)}});
  Message m{"user", {}};
  for (const auto& i : images) m.content.push_back(ContentPart::Image(i));
  m.content.push_back(ContentPart::Text(user));
  req.conversation.push_back(std::move(m));
  req.generation = pipe.default_generation();
  req.generation.max_new_tokens = max_tokens;
  req.media.threads = 1;
  return req;
}

server::ServerOptions DefaultOptions(const std::string& model_name) {
  server::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.model_name = model_name;
  o.engine.max_batch = 4;
  o.engine.max_queue = 8;
  o.shutdown_grace_s = 10;
  return o;
}

TestServer StartServer(const std::string& model, server::ServerOptions options, bool load) {
  TestServer t;
  t.model_name = options.model_name;
  t.server = std::make_unique<server::Server>(options);
  const int port = t.server->Start();
  t.base = "http://127.0.0.1:" + std::to_string(port);
  if (load) {
    auto pipe = LoadModel(model);
    GenerationConfig g = pipe->default_generation();
    g.max_new_tokens = options.default_max_tokens;
    t.server->SetPipeline(pipe, g);
  }
  return t;
}

}  // namespace plm::test
