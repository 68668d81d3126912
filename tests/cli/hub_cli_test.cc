// `plm run --model ORG/NAME` against a loopback fake Hub serving a fixture model: the first run
// downloads into the Hugging Face cache layout under HF_HOME, a second run with HF_HUB_OFFLINE=1
// and the Hub gone answers the same from the cache; `plm info` takes Hub ids too.
#include <gtest/gtest.h>

#include "cli/cli_util.h"
#include "core/json.h"
#include "io/fake_hub_server.h"
#include "support/test_support.h"

namespace plm {
namespace {

test::RunOptions HubEnv(const std::string& hf_home, const std::string& endpoint, bool offline) {
  test::RunOptions o;
  o.unset_env = test::HubEnvironmentVariables();
  o.env["HF_HOME"] = hf_home;
  if (!endpoint.empty()) o.env["HF_ENDPOINT"] = endpoint;
  if (offline) o.env["HF_HUB_OFFLINE"] = "1";
  return o;
}

TEST(HubCli, DownloadsThenRunsOffline) {
  const auto models = test::FixtureModels();
  ASSERT_FALSE(models.empty());
  const std::string model = models[0];
  const std::string id = "test-org/" + model.substr(model.rfind('/') + 1);
  const std::string home = test::MakeTempDir();
  const std::vector<std::string> args = {"run", "--model", id,       "--prompt", "Hello there.",
                                         "-n",  "4",       "--json", "-t",       "2"};
  std::string commit;
  Json online;
  {
    test::FakeHub hub;
    hub.AddRepo(id, model);
    commit = hub.Commit(id);
    const test::RunResult r = test::RunPlm(args, HubEnv(home, hub.endpoint(), false));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << "no progress when stderr is not a terminal: " << r.err;
    online = ParseJson(r.out, "plm run --json");
    EXPECT_GT(hub.RequestCount(), 0u);
    // The huggingface_hub cache layout: refs/main -> commit, snapshots/<commit>/<files>.
    const std::string repo =
        home + "/hub/models--" + id.substr(0, id.find('/')) + "--" + id.substr(id.find('/') + 1);
    EXPECT_TRUE(test::PathExists(repo + "/refs/main"));
    EXPECT_TRUE(test::PathExists(repo + "/snapshots/" + commit + "/config.json"));
    EXPECT_TRUE(test::PathExists(repo + "/snapshots/" + commit + "/model.safetensors"));
    EXPECT_TRUE(test::PathExists(repo + "/blobs"));
    // A local folder run gives the same tokens.
    std::vector<std::string> local = args;
    local[2] = model;
    const test::RunResult l = test::RunPlm(local);
    ASSERT_EQ(l.code, 0) << l.err;
    EXPECT_EQ(ParseJson(l.out, "local")["tokens"], online["tokens"]);
    // Unknown repos are "not found".
    std::vector<std::string> missing = args;
    missing[2] = "test-org/no-such-model";
    const test::RunResult m = test::RunPlm(missing, HubEnv(home, hub.endpoint(), false));
    EXPECT_EQ(m.code, 3) << m.err;
    EXPECT_NE(m.err.find("no-such-model"), std::string::npos) << m.err;
  }
  // The Hub is gone: offline mode answers from the cache; info reads it too.
  const test::RunResult off = test::RunPlm(args, HubEnv(home, "http://127.0.0.1:9", true));
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(ParseJson(off.out, "offline")["tokens"], online["tokens"]);
  const test::RunResult info =
      test::RunPlm({"info", id, "--json"}, HubEnv(home, "http://127.0.0.1:9", true));
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(ParseJson(info.out, "info")["model"].get<std::string>().find(commit),
            std::string::npos);
  // Offline and not cached: a clear error naming the offline mode.
  const test::RunResult none =
      test::RunPlm({"info", "test-org/never-downloaded"}, HubEnv(home, "http://127.0.0.1:9", true));
  EXPECT_NE(none.code, 0);
  EXPECT_NE(none.err.find("HF_HUB_OFFLINE"), std::string::npos) << none.err;
  EXPECT_EQ(std::count(none.err.begin(), none.err.end(), '\n'), 1) << none.err;
}

}  // namespace
}  // namespace plm
