// Shared pieces of the server tests: fixture models, their golden `image` requests, loaded
// pipelines (cached per model), and in-process servers on a loopback port.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "plm/pipeline.h"
#include "server/http_server.h"

namespace plm::test {

// Fixture model folders (names under $PLM_FIXTURES/models with a config.json).
std::vector<std::string> ServerModels();
std::string ModelDir(const std::string& name);

// The `image` golden case of a model as a user request: the image file that reproduces the
// golden pixels, the system prompt and the user text.
struct GoldenRequest {
  std::string image_path;
  std::string system;
  std::string user;
  int64_t max_tokens = 16;
};
GoldenRequest ImageGolden(const std::string& model);

// One loaded pipeline per model for the whole test program.
std::shared_ptr<const Pipeline> LoadModel(const std::string& model);

// A ChatRequest (greedy unless changed) equal to what the server builds from the same request.
ChatRequest MakeChat(const Pipeline& pipe, const std::string& system, const std::string& user,
                     const std::vector<std::string>& images, int64_t max_tokens);

// A running in-process server on 127.0.0.1 with a free port.
struct TestServer {
  std::unique_ptr<server::Server> server;
  std::string base;  // "http://127.0.0.1:PORT"
  std::string model_name;
};
server::ServerOptions DefaultOptions(const std::string& model_name);
TestServer StartServer(const std::string& model, server::ServerOptions options, bool load = true);

}  // namespace plm::test
