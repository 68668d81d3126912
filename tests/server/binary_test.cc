// The `plm serve` binary as a user runs it: flags in --help, the same answer as `plm run`,
// and SIGTERM while a stream is in flight (it finishes, the process exits 0).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/json.h"
#include "server/http_test_client.h"
#include "server/server_test_util.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string RunCapture(const std::string& cmd, int* code) {
  const std::string out = test::MakeTempDir() + "/out";
  const int status = std::system((cmd + " > " + out + " 2>&1 < /dev/null").c_str());
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return test::ReadFileBytes(out);
}

TEST(ServeBinary, HelpListsTheLimitsAndEngineOptions) {
  int code = 0;
  const std::string help = RunCapture(std::string(PLM_BINARY_DIR) + "/plm serve --help", &code);
  EXPECT_EQ(code, 0) << help;
  for (const char* flag :
       {"--host", "--port", "--model", "--max-batch", "--max-queue", "--timeout", "--max-body-mb",
        "--max-image-mb", "--max-image-pixels", "--max-tiles", "--max-video-seconds",
        "--max-video-frames", "--max-tokens-limit", "--max-context", "--allow-media-dir",
        "--prefix-cache-mb", "--temperature", "--seed"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}

// One model: `plm run --json` and `plm serve` answer the golden image request alike (plain and
// streamed), then SIGTERM arrives during a stream.
void AnswersLikePlmRun(const std::string& m) {
  SCOPED_TRACE(m);
  const std::string dir = test::ModelDir(m);
  const auto g = test::ImageGolden(m);
  int code = 0;
  const std::string run_out =
      RunCapture(Quote(std::string(PLM_BINARY_DIR) + "/plm") + " run -m " + Quote(dir) + " -i " +
                     Quote(g.image_path) + " -p " + Quote(g.user) + " --system " + Quote(g.system) +
                     " -n " + std::to_string(g.max_tokens) + " --json -t 2",
                 &code);
  ASSERT_EQ(code, 0) << run_out;
  const Json run = ParseJson(run_out, "plm run --json");

  const std::string log = test::MakeTempDir() + "/serve.log";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl((std::string(PLM_BINARY_DIR) + "/plm").c_str(), "plm", "serve", "-m", dir.c_str(),
          "--port", "0", "-t", "2", "--served-model-name", "tiny", "--shutdown-grace", "60",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // The port is on the first stderr line.
  int port = 0;
  for (int i = 0; i < 500 && port == 0; ++i) {
    const std::string text = test::ReadFileBytes(log);
    const size_t at = text.find("http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 17);
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(port, 0) << test::ReadFileBytes(log);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  int health = 0;
  for (int i = 0; i < 1000 && health != 200; ++i) {
    health = static_cast<int>(test::HttpCall("GET", base + "/health").status);
    if (health != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(health, 200) << test::ReadFileBytes(log);

  Json msgs = Json::array();
  msgs.push_back({{"role", "system"}, {"content", g.system}});
  msgs.push_back(
      {{"role", "user"},
       {"content", Json::array({{{"type", "image_url"},
                                 {"image_url",
                                  {{"url", "data:image/png;base64," +
                                               test::Base64(test::ReadFileBytes(g.image_path))}}}},
                                {{"type", "text"}, {"text", g.user}}})}});
  Json body = {{"model", "tiny"}, {"messages", msgs}, {"max_tokens", g.max_tokens}};
  const test::HttpResult r = test::HttpCall("POST", base + "/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json j = ParseJson(r.body, "response");
  EXPECT_EQ(j["choices"][0]["message"]["content"], run["text"]);
  EXPECT_EQ(j["usage"]["completion_tokens"], run["completion_tokens"]);
  EXPECT_EQ(j["usage"]["prompt_tokens"], run["prompt_tokens"]);
  {
    Json sb = body;
    sb["stream"] = true;
    std::string text;
    test::StreamSse(base + "/v1/chat/completions", sb.dump(), [&](const std::string& d) {
      if (d == "[DONE]") return true;
      const Json c = ParseJson(d, "chunk");
      if (!c["choices"].empty() && c["choices"][0]["delta"].contains("content"))
        text += c["choices"][0]["delta"]["content"].get<std::string>();
      return true;
    });
    EXPECT_EQ(text, run["text"]);
  }

  // SIGTERM in the middle of a stream: the stream still ends with [DONE], then exit 0.
  body["max_tokens"] = 400;
  body["stream"] = true;
  std::atomic<bool> started{false};
  bool done = false;
  std::string streamed;
  std::thread client([&] {
    test::StreamSse(base + "/v1/chat/completions", body.dump(), [&](const std::string& d) {
      started = true;
      if (d == "[DONE]") done = true;
      return true;
    });
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  kill(pid, SIGTERM);
  client.join();
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(done) << test::ReadFileBytes(log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::ReadFileBytes(log);
}

TEST(ServeBinary, AnswersLikePlmRunAndStopsCleanlyOnSigterm) {
  for (const auto& m : test::ServerModels()) AnswersLikePlmRun(m);
}

}  // namespace
}  // namespace plm
