// Hub downloads end to end against FakeHub, a loopback server that answers like the Hugging Face
// Hub, serving a fixture model; plus the environment and cache-layout helpers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fake_hub_server.h"
#include "io/hf_cache.h"
#include "io/hub_download.h"
#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kRepo = "test-org/tiny-model";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "<missing " + path + ">";
  std::string data(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  return data;
}

// Byte-identical files, reported by name (not by dumping megabytes) when they differ.
::testing::AssertionResult SameFile(const std::string& got, const std::string& want) {
  if (ReadAll(got) == ReadAll(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << got << " differs from " << want;
}

// The first fixture model folder with a config and single-file weights; "" when there is none.
std::string FixtureModelDir() {
  const std::string models = test::FixturesDir() + "/models";
  for (const auto& name : test::ListDir(models, true)) {
    const std::string dir = models + "/" + name;
    if (test::PathExists(dir + "/config.json") && test::PathExists(dir + "/model.safetensors"))
      return dir;
  }
  return "";
}

// Runs `fn`, which must throw plm::Error, and returns that error.
template <typename Fn>
Error CatchError(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a plm::Error";
  return Error(ErrorCode::kInternal, "no error");
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class HubDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = FixtureModelDir();
    // No fixtures is a broken set-up, not a reason to skip.
    ASSERT_FALSE(model_dir_.empty()) << "no fixture model under " << test::FixturesDir();
    hub_ = std::make_unique<test::FakeHub>();
    hub_->AddRepo(kRepo, model_dir_);
    cache_ = test::MakeTempDir() + "/hub";
    repo_dir_ = cache_ + "/models--test-org--tiny-model";
  }

  HubOptions Options() const {
    HubOptions o;
    o.endpoint = hub_->endpoint();
    o.cache_dir = cache_;
    o.etag_timeout_s = 5;
    o.download_timeout_s = 5;
    o.retries = 0;
    o.retry_delay_ms = 0;
    return o;
  }

  std::vector<std::string> FixtureFiles() const { return test::ListDir(model_dir_, false); }
  std::string Blob(const std::string& file) const {
    return repo_dir_ + "/blobs/" + hub_->Etag(kRepo, file);
  }
  size_t CountRequests(const std::string& path_part) const {
    size_t n = 0;
    for (const auto& r : hub_->Requests()) n += Contains(r.path, path_part) ? 1 : 0;
    return n;
  }

  std::string model_dir_;
  std::unique_ptr<test::FakeHub> hub_;
  std::string cache_;
  std::string repo_dir_;
};

TEST_F(HubDownloadTest, FillsTheHuggingFaceCacheLayout) {
  const std::string snap = DownloadModel(kRepo, Options());
  const std::string commit = hub_->Commit(kRepo);
  EXPECT_EQ(snap, repo_dir_ + "/snapshots/" + commit);
  EXPECT_EQ(ReadAll(repo_dir_ + "/refs/main"), commit);  // no trailing newline
  for (const auto& file : FixtureFiles()) {
    SCOPED_TRACE(file);
    const std::string pointer = snap + "/" + file;
    ASSERT_TRUE(fs::is_symlink(pointer));
    EXPECT_EQ(fs::read_symlink(pointer).string(), "../../blobs/" + hub_->Etag(kRepo, file));
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(Blob(file))));
    EXPECT_TRUE(SameFile(pointer, model_dir_ + "/" + file));
  }
  // Optional files the repo lacks are recorded as huggingface_hub does, in .no_exist/{commit}
  // (the index is not even asked for when the single-file weights exist).
  for (const auto& name : DefaultHubFiles()) {
    if (test::PathExists(model_dir_ + "/" + name) || name == "model.safetensors.index.json")
      continue;
    EXPECT_TRUE(fs::exists(repo_dir_ + "/.no_exist/" + commit + "/" + name)) << name;
  }
  for (const auto& e : fs::directory_iterator(repo_dir_ + "/blobs"))
    EXPECT_NE(e.path().extension(), ".incomplete") << e.path();
  EXPECT_TRUE(hub_->IsLfs(kRepo, "model.safetensors"));
  EXPECT_EQ(CountRequests("/cdn/test-org/tiny-model/model.safetensors"), 1u);
}

TEST_F(HubDownloadTest, SecondCallUsesTheCacheWithoutNetwork) {
  const std::string first = DownloadModel(kRepo, Options());
  const size_t requests = hub_->RequestCount();
  EXPECT_GT(requests, 0u);
  EXPECT_EQ(DownloadModel(kRepo, Options()), first);
  EXPECT_EQ(hub_->RequestCount(), requests);
}

TEST_F(HubDownloadTest, RefreshAsksForTheCommitButDownloadsNothingNew) {
  DownloadModel(kRepo, Options());
  hub_->ClearRequests();
  HubOptions o = Options();
  o.refresh = true;
  DownloadModel(kRepo, o);
  EXPECT_EQ(hub_->RequestCount(), 1u);
  EXPECT_EQ(CountRequests("/api/models/"), 1u);
}

TEST_F(HubDownloadTest, ReusesBlobsAlreadyInTheCache) {
  DownloadModel(kRepo, Options());
  // As if Python had fetched the blobs for another snapshot: only the pointers are missing.
  fs::remove_all(repo_dir_ + "/snapshots");
  fs::remove_all(repo_dir_ + "/refs");
  hub_->ClearRequests();
  const std::string snap = DownloadModel(kRepo, Options());
  for (const auto& file : FixtureFiles())
    EXPECT_TRUE(SameFile(snap + "/" + file, model_dir_ + "/" + file)) << file;
  for (const auto& r : hub_->Requests()) {
    EXPECT_FALSE(Contains(r.path, "/cdn/")) << r.path;
    EXPECT_TRUE(r.method == "HEAD" || Contains(r.path, "/api/")) << r.method << " " << r.path;
  }
}

TEST_F(HubDownloadTest, OfflineModeUsesOnlyTheCache) {
  HubOptions o = Options();
  o.offline = true;
  const Error missing = CatchError([&] { DownloadModel(kRepo, o); });
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(missing.what(), kRepo)) << missing.what();
  EXPECT_TRUE(Contains(missing.what(), "HF_HUB_OFFLINE")) << missing.what();
  EXPECT_EQ(hub_->RequestCount(), 0u);

  const std::string snap = DownloadModel(kRepo, Options());
  hub_->ClearRequests();
  EXPECT_EQ(DownloadModel(kRepo, o), snap);
  EXPECT_EQ(hub_->RequestCount(), 0u);

  fs::remove(snap + "/config.json");
  const Error partial = CatchError([&] { DownloadModel(kRepo, o); });
  EXPECT_EQ(partial.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(partial.what(), "config.json")) << partial.what();
  EXPECT_TRUE(Contains(partial.what(), "HF_HUB_OFFLINE")) << partial.what();
  EXPECT_EQ(hub_->RequestCount(), 0u);
}

TEST_F(HubDownloadTest, ResumesACutTransferByteForByte) {
  const std::string want = ReadAll(model_dir_ + "/model.safetensors");
  const int64_t half = static_cast<int64_t>(want.size() / 2);
  hub_->CutNextTransferAfter("model.safetensors", half);
  const Error cut = CatchError([&] { DownloadModel(kRepo, Options()); });
  EXPECT_EQ(cut.code(), ErrorCode::kIo);
  EXPECT_TRUE(Contains(cut.what(), "model.safetensors")) << cut.what();
  EXPECT_TRUE(Contains(cut.what(), "resume")) << cut.what();
  // Never a truncated blob, never a pointer to one; the partial file waits for the next run.
  const std::string blob = Blob("model.safetensors");
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_FALSE(fs::exists(repo_dir_ + "/snapshots/" + hub_->Commit(kRepo) + "/model.safetensors"));
  ASSERT_TRUE(fs::exists(blob + ".incomplete"));
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(blob + ".incomplete")), half);

  hub_->ClearRequests();
  const std::string snap = DownloadModel(kRepo, Options());
  EXPECT_TRUE(ReadAll(snap + "/model.safetensors") == want) << "resumed file differs";
  EXPECT_FALSE(fs::exists(blob + ".incomplete"));
  bool resumed = false;
  for (const auto& r : hub_->Requests())
    if (Contains(r.path, "/cdn/")) resumed = r.range == "bytes=" + std::to_string(half) + "-";
  EXPECT_TRUE(resumed);
}

TEST_F(HubDownloadTest, RetriesACutTransferWithinOneCall) {
  hub_->CutNextTransferAfter("model.safetensors", 1000);
  HubOptions o = Options();
  o.retries = 2;
  const std::string snap = DownloadModel(kRepo, o);
  EXPECT_TRUE(SameFile(snap + "/model.safetensors", model_dir_ + "/model.safetensors"));
  std::vector<std::string> ranges;
  for (const auto& r : hub_->Requests())
    if (Contains(r.path, "/cdn/") && Contains(r.path, "model.safetensors"))
      ranges.push_back(r.range);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], "bytes=1000-");
}

TEST_F(HubDownloadTest, AsksTheHubAgainWhenTheCdnRefusesItsUrl) {
  hub_->RefuseNextCdnRequest();
  const std::string snap = DownloadModel(kRepo, Options());
  for (const auto& file : FixtureFiles())
    EXPECT_TRUE(SameFile(snap + "/" + file, model_dir_ + "/" + file));
  // The refused file was looked up twice: its first CDN request names it.
  std::string refused;
  for (const auto& r : hub_->Requests())
    if (refused.empty() && Contains(r.path, "/cdn/")) refused = r.path.substr(r.path.rfind('/'));
  ASSERT_FALSE(refused.empty());
  EXPECT_EQ(CountRequests("/resolve/" + hub_->Commit(kRepo) + refused), 2u) << refused;
}

TEST_F(HubDownloadTest, ReportsProgress) {
  const int64_t size = static_cast<int64_t>(fs::file_size(model_dir_ + "/model.safetensors"));
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> calls;
  HubOptions o = Options();
  o.on_progress = [&](const std::string& file, int64_t done, int64_t total) {
    calls[file].push_back({done, total});
  };
  DownloadModel(kRepo, o);
  const auto& w = calls["model.safetensors"];
  ASSERT_GE(w.size(), 2u);
  EXPECT_EQ(w.front().first, 0);
  EXPECT_EQ(w.back(), std::make_pair(size, size));
  for (size_t i = 1; i < w.size(); ++i) EXPECT_LE(w[i - 1].first, w[i].first);
}

TEST_F(HubDownloadTest, GatedRepoNeedsTheToken) {
  const std::string gated = "test-org/gated-model";
  hub_->AddRepo(gated, model_dir_, /*gated=*/true);
  const Error no_token = CatchError([&] { DownloadModel(gated, Options()); });
  EXPECT_EQ(no_token.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(no_token.what(), "HF_TOKEN")) << no_token.what();
  EXPECT_TRUE(Contains(no_token.what(), gated)) << no_token.what();

  HubOptions o = Options();
  o.token = "hf_wrong";
  const Error wrong = CatchError([&] { DownloadModel(gated, o); });
  EXPECT_TRUE(Contains(wrong.what(), "rejected the access token")) << wrong.what();

  hub_->ClearRequests();
  o.token = test::FakeHub::kToken;
  const std::string snap = DownloadModel(gated, o);
  EXPECT_TRUE(SameFile(snap + "/config.json", model_dir_ + "/config.json"));
  // The token goes to the Hub only, never to the CDN host the large files are redirected to.
  size_t cdn = 0;
  for (const auto& r : hub_->Requests()) {
    if (Contains(r.path, "/cdn/")) {
      ++cdn;
      EXPECT_EQ(r.authorization, "") << r.path;
    } else {
      EXPECT_EQ(r.authorization, std::string("Bearer ") + test::FakeHub::kToken) << r.path;
    }
  }
  EXPECT_GT(cdn, 0u);
}

TEST_F(HubDownloadTest, UnknownRepoRevisionOrWeightsIsNotFound) {
  const Error repo = CatchError([&] { DownloadModel("test-org/no-such-model", Options()); });
  EXPECT_EQ(repo.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(repo.what(), "test-org/no-such-model")) << repo.what();

  HubOptions o = Options();
  o.revision = "v9.9";
  const Error rev = CatchError([&] { DownloadModel(kRepo, o); });
  EXPECT_EQ(rev.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(rev.what(), "v9.9")) << rev.what();

  const std::string dir = test::MakeTempDir();
  fs::copy_file(model_dir_ + "/config.json", dir + "/config.json");
  hub_->AddRepo("test-org/no-weights", dir);
  const Error weights = CatchError([&] { DownloadModel("test-org/no-weights", Options()); });
  EXPECT_EQ(weights.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(weights.what(), "model.safetensors")) << weights.what();
  EXPECT_TRUE(Contains(weights.what(), "test-org/no-weights")) << weights.what();

  const Error bad_id = CatchError([&] { DownloadModel("not a repo", Options()); });
  EXPECT_EQ(bad_id.code(), ErrorCode::kInvalidArgument);
}

TEST_F(HubDownloadTest, WorksWithoutTheFileListApi) {
  hub_->set_api_enabled(false);
  const std::string snap = DownloadModel(kRepo, Options());
  EXPECT_EQ(snap, repo_dir_ + "/snapshots/" + hub_->Commit(kRepo));
  for (const auto& file : FixtureFiles())
    EXPECT_TRUE(SameFile(snap + "/" + file, model_dir_ + "/" + file)) << file;
  const size_t requests = hub_->RequestCount();
  EXPECT_EQ(DownloadModel(kRepo, Options()), snap);
  EXPECT_EQ(hub_->RequestCount(), requests);

  const Error missing = CatchError([&] { DownloadModel("test-org/no-such-model", Options()); });
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(missing.what(), "test-org/no-such-model")) << missing.what();
}

TEST_F(HubDownloadTest, FollowsTheRedirectOfARenamedRepo) {
  hub_->RenameRepo("old-org/old-name", kRepo);
  const std::string snap = DownloadModel("old-org/old-name", Options());
  EXPECT_EQ(snap, cache_ + "/models--old-org--old-name/snapshots/" + hub_->Commit(kRepo));
  EXPECT_TRUE(SameFile(snap + "/model.safetensors", model_dir_ + "/model.safetensors"));
}

TEST_F(HubDownloadTest, FetchesEveryShardOfAnIndex) {
  const std::string dir = test::MakeTempDir();
  fs::copy_file(model_dir_ + "/config.json", dir + "/config.json");
  test::WriteFile(dir + "/model.safetensors.index.json",
                  R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                      "b": "model-00002-of-00002.safetensors",
                      "c": "model-00001-of-00002.safetensors"}})");
  test::WriteFile(dir + "/model-00001-of-00002.safetensors", std::string(5000, 'x'));
  test::WriteFile(dir + "/model-00002-of-00002.safetensors", std::string(7000, 'y'));
  const std::string repo = "test-org/sharded";
  hub_->AddRepo(repo, dir);
  const std::string snap = DownloadModel(repo, Options());
  for (const auto& file : test::ListDir(dir, false))
    EXPECT_TRUE(SameFile(snap + "/" + file, dir + "/" + file)) << file;
  EXPECT_FALSE(fs::exists(snap + "/model.safetensors"));
  const size_t requests = hub_->RequestCount();
  DownloadModel(repo, Options());
  EXPECT_EQ(hub_->RequestCount(), requests);
}

TEST(HubDownloadErrors, UnreachableEndpointIsAnIoError) {
  HubOptions o;
  o.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  o.cache_dir = test::MakeTempDir();
  o.etag_timeout_s = 2;
  const Error e = CatchError([&] { DownloadModel("test-org/tiny-model", o); });
  EXPECT_EQ(e.code(), ErrorCode::kIo);
  EXPECT_TRUE(Contains(e.what(), "cannot reach")) << e.what();
}

TEST(HubOptionsTest, DefaultsFollowHuggingfaceHub) {
  const HubOptions o = HubOptionsFromEnv({{"HOME", "/home/u"}});
  EXPECT_EQ(o.endpoint, "https://huggingface.co");
  EXPECT_EQ(o.cache_dir, "/home/u/.cache/huggingface/hub");
  EXPECT_EQ(o.revision, "main");
  EXPECT_EQ(o.token, "");
  EXPECT_FALSE(o.offline);
  EXPECT_EQ(o.etag_timeout_s, 10);
  EXPECT_EQ(o.download_timeout_s, 10);
}

TEST(HubOptionsTest, EndpointAndCacheFromTheEnvironment) {
  EXPECT_EQ(HubOptionsFromEnv({{"HF_ENDPOINT", "http://mirror.example:8080/"}}).endpoint,
            "http://mirror.example:8080");
  EXPECT_EQ(HubOptionsFromEnv({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/xdg"}}).cache_dir,
            "/xdg/huggingface/hub");
  EXPECT_EQ(HubOptionsFromEnv({{"HOME", "/h"}, {"HF_HOME", "/data/hf"}}).cache_dir, "/data/hf/hub");
  EXPECT_EQ(HubOptionsFromEnv({{"HOME", "/h"}, {"HF_HOME", "~/hf"}}).cache_dir, "/h/hf/hub");
  EXPECT_EQ(
      HubOptionsFromEnv({{"HF_HOME", "/data/hf"}, {"HUGGINGFACE_HUB_CACHE", "/legacy"}}).cache_dir,
      "/legacy");
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HOME", "/data/hf"},
                               {"HUGGINGFACE_HUB_CACHE", "/legacy"},
                               {"HF_HUB_CACHE", "/fast/hub"}})
                .cache_dir,
            "/fast/hub");
  EXPECT_THROW(HubOptionsFromEnv({{"HF_HUB_ETAG_TIMEOUT", "soon"}}), Error);
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HUB_DOWNLOAD_TIMEOUT", "42"}}).download_timeout_s, 42);
}

TEST(HubOptionsTest, OfflineValues) {
  for (const char* v : {"1", "ON", "yes", "True"})
    EXPECT_TRUE(HubOptionsFromEnv({{"HF_HUB_OFFLINE", v}}).offline) << v;
  for (const char* v : {"0", "false", "off", ""})
    EXPECT_FALSE(HubOptionsFromEnv({{"HF_HUB_OFFLINE", v}}).offline) << v;
  EXPECT_TRUE(HubOptionsFromEnv({{"TRANSFORMERS_OFFLINE", "1"}}).offline);
  // As in Python's `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`: a set HF_HUB_OFFLINE decides.
  EXPECT_FALSE(HubOptionsFromEnv({{"HF_HUB_OFFLINE", "0"}, {"TRANSFORMERS_OFFLINE", "1"}}).offline);
}

TEST(HubOptionsTest, TokenFromVariableThenFile) {
  const std::string home = test::MakeTempDir();
  test::WriteFile(home + "/token", "  hf_from_file\n");
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HOME", home}}).token, "hf_from_file");
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HOME", home}, {"HF_TOKEN", "hf_from_env"}}).token,
            "hf_from_env");
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HOME", home}, {"HUGGING_FACE_HUB_TOKEN", "hf_legacy"}}).token,
            "hf_legacy");
  test::WriteFile(home + "/other", "hf_other");
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HOME", home}, {"HF_TOKEN_PATH", home + "/other"}}).token,
            "hf_other");
  EXPECT_EQ(
      HubOptionsFromEnv(
          {{"HF_HOME", home}, {"HF_TOKEN", "hf_from_env"}, {"HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"}})
          .token,
      "");
  EXPECT_EQ(HubOptionsFromEnv({{"HF_HOME", home + "/none"}}).token, "");
}

TEST(HubIdTest, LooksLikeHubId) {
  EXPECT_TRUE(LooksLikeHubId("facebook/Perception-LM-1B"));
  EXPECT_TRUE(LooksLikeHubId("org_1/model.v2"));
  for (const char* bad : {"gpt2", "a/b/c", "/abs/path", "org/", "/name", "org/na--me", "org/a..b",
                          "org/.hidden", "org/name-", "./x", "org/na me"})
    EXPECT_FALSE(LooksLikeHubId(bad)) << bad;
  // An existing relative path is a local folder, not a Hub id.
  const std::string org = "hubid-test-" + std::to_string(::getpid());
  fs::create_directories(org + "/model");
  EXPECT_FALSE(LooksLikeHubId(org + "/model"));
  EXPECT_TRUE(IsValidRepoId(org + "/model"));
  fs::remove_all(org);
}

TEST(HubCacheTest, NamesFollowHuggingfaceHub) {
  EXPECT_EQ(RepoFolderName("facebook/Perception-LM-1B"), "models--facebook--Perception-LM-1B");
  EXPECT_EQ(NormalizeEtag("\"abc123\""), "abc123");
  EXPECT_EQ(NormalizeEtag("W/\"abc123\""), "abc123");
  EXPECT_TRUE(IsCommitHash(std::string(40, 'a')));
  EXPECT_FALSE(IsCommitHash("main"));
  EXPECT_TRUE(IsSafeRelativePath("a/b.json"));
  for (const char* bad : {"", "/abs", "../x", "a/../b", "a//b", "a/", ".", "a\\b"})
    EXPECT_FALSE(IsSafeRelativePath(bad)) << bad;
}

TEST(HubCacheTest, NestedFilesLinkBackToBlobs) {
  const std::string cache = test::MakeTempDir();
  HfCacheRepo repo(cache, "org/name");
  test::WriteFile(cache + "/placeholder", "");
  fs::create_directories(repo.dir() + "/blobs");
  test::WriteFile(repo.BlobPath("e1"), "hello");
  repo.Link("c0ffee", "sub/dir/file.txt", "e1");
  const std::string pointer = repo.PointerPath("c0ffee", "sub/dir/file.txt");
  EXPECT_EQ(fs::read_symlink(pointer).string(), "../../../../blobs/e1");
  EXPECT_EQ(ReadAll(pointer), "hello");
  EXPECT_TRUE(repo.HasFile("c0ffee", "sub/dir/file.txt"));
  repo.WriteRef("refs/pr/1", "c0ffee");
  EXPECT_EQ(repo.ReadRef("refs/pr/1"), "c0ffee");
  EXPECT_EQ(repo.ReadRef("main"), "");
}

}  // namespace
}  // namespace plm
