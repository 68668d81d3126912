// The HTTP server on a loopback port, driven by a real HTTP client (libcurl): answers equal to
// Pipeline::Chat (what `plm run` prints), streaming, concurrency, errors, limits, 429, cancellation
// on disconnect, health, metrics and graceful shutdown.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "core/json.h"
#include "io/video_test_files.h"
#include "server/http_test_client.h"
#include "server/server_test_util.h"
#include "support/test_support.h"

namespace plm {
namespace {

using test::HttpCall;
using test::HttpResult;

std::string DataUrl(const std::string& path) {
  std::string mime = "image/png";
  if (path.size() > 4 && path.substr(path.size() - 4) == ".jpg") mime = "image/jpeg";
  return "data:" + mime + ";base64," + test::Base64(test::ReadFileBytes(path));
}

Json ChatBody(const std::string& model, const std::string& system, const std::string& user,
              const std::vector<std::string>& image_urls, int64_t max_tokens) {
  Json msgs = Json::array();
  if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
  Json content = Json::array();
  for (const auto& u : image_urls)
    content.push_back({{"type", "image_url"}, {"image_url", {{"url", u}}}});
  content.push_back({{"type", "text"}, {"text", user}});
  msgs.push_back({{"role", "user"}, {"content", content}});
  Json b = {{"model", model}, {"messages", msgs}};
  if (max_tokens > 0) b["max_tokens"] = max_tokens;
  return b;
}

struct StreamResult {
  HttpResult http;
  std::vector<Json> chunks;
  bool done = false;  // saw data: [DONE]
  std::string text;
};

StreamResult Stream(const std::string& base, Json body,
                    const std::function<bool(const Json&)>& on_chunk = {}) {
  body["stream"] = true;
  StreamResult r;
  r.http = test::StreamSse(base + "/v1/chat/completions", body.dump(), [&](const std::string& d) {
    if (d == "[DONE]") {
      r.done = true;
      return true;
    }
    Json c = ParseJson(d, "chunk");
    if (c.contains("choices") && !c["choices"].empty()) {
      const Json& delta = c["choices"][0]["delta"];
      if (delta.contains("content")) r.text += delta["content"].get<std::string>();
    }
    r.chunks.push_back(c);
    return on_chunk ? on_chunk(c) : true;
  });
  return r;
}

Json Post(const std::string& base, const Json& body, long* status) {
  const HttpResult r = HttpCall("POST", base + "/v1/chat/completions", body.dump());
  *status = r.status;
  return r.body.empty() ? Json() : ParseJson(r.body, "response");
}

// Expects an OpenAI-style error with `status` whose message contains `needle`.
void ExpectError(const std::string& base, const std::string& raw_body, long status,
                 const std::string& needle, const std::string& what) {
  const HttpResult r = HttpCall("POST", base + "/v1/chat/completions", raw_body);
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  Json j;
  ASSERT_NO_THROW(j = ParseJson(r.body, "error body")) << what << ": " << r.body;
  ASSERT_TRUE(j.contains("error")) << what << ": " << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string()) << what;
  EXPECT_TRUE(j["error"]["type"].is_string()) << what;
  EXPECT_TRUE(j["error"].contains("code")) << what;
  EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos)
      << what << ": " << r.body;
}

double MetricValue(const std::string& metrics, const std::string& series) {
  const size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + series.size() + 2));
}

TEST(Server, AnswersEqualPipelineOnEveryFixtureModel) {
  for (const auto& m : test::ServerModels()) {
    auto pipe = test::LoadModel(m);
    const auto g = test::ImageGolden(m);
    const ChatResult want =
        pipe->Chat(test::MakeChat(*pipe, g.system, g.user, {g.image_path}, g.max_tokens));
    auto srv = test::StartServer(m, test::DefaultOptions(m));
    const Json body = ChatBody(m, g.system, g.user, {DataUrl(g.image_path)}, g.max_tokens);
    long status = 0;
    const Json j = Post(srv.base, body, &status);
    ASSERT_EQ(status, 200) << j.dump();
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    EXPECT_GT(j["created"].get<int64_t>(), 0);
    EXPECT_EQ(j["model"], m);
    EXPECT_EQ(j["choices"][0]["index"], 0);
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(j["choices"][0]["message"]["content"], want.text) << m;
    EXPECT_EQ(j["choices"][0]["finish_reason"], StopReasonName(want.stop_reason));
    EXPECT_EQ(j["usage"]["prompt_tokens"], want.prompt_tokens);
    EXPECT_EQ(j["usage"]["completion_tokens"], want.completion_tokens);
    EXPECT_EQ(j["usage"]["total_tokens"], want.prompt_tokens + want.completion_tokens);

    // The same request streamed: role first, then content deltas, then the finish reason with
    // usage, then [DONE].
    const StreamResult s = Stream(srv.base, body);
    ASSERT_EQ(s.http.status, 200) << s.http.body;
    EXPECT_NE(s.http.content_type.find("text/event-stream"), std::string::npos);
    ASSERT_GE(s.chunks.size(), 2u);
    EXPECT_TRUE(s.done);
    EXPECT_EQ(s.chunks.front()["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(s.text, want.text) << m;
    const Json& last = s.chunks.back();
    EXPECT_EQ(last["object"], "chat.completion.chunk");
    EXPECT_EQ(last["choices"][0]["finish_reason"], StopReasonName(want.stop_reason));
    EXPECT_EQ(last["usage"]["completion_tokens"], want.completion_tokens);
    for (size_t i = 0; i + 1 < s.chunks.size(); ++i)
      EXPECT_TRUE(s.chunks[i]["choices"][0]["finish_reason"].is_null());
  }
}

TEST(Server, VideosTilesFramesAndConversationsEqualPipeline) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  const auto g = test::ImageGolden(m);
  auto srv = test::StartServer(m, test::DefaultOptions(m));
  // A video (.npy frames sent as a data: URL) with the num_frames extension.
  std::string video;
  for (const auto& f : test::ListDir(test::FixturesDir() + "/inputs", false))
    if (f.size() > 4 && f.substr(f.size() - 4) == ".npy")
      video = test::FixturesDir() + "/inputs/" + f;
  ASSERT_FALSE(video.empty());
  for (const int frames : {0, 4}) {
    ChatRequest req = test::MakeChat(*pipe, "", "What happens in the video?", {}, 6);
    req.conversation[0].content.insert(req.conversation[0].content.begin(),
                                       ContentPart::Video(video));
    if (frames > 0) req.media.num_frames = frames;
    const ChatResult want = pipe->Chat(req);
    Json body = ChatBody(m, "", "What happens in the video?", {}, 6);
    body["messages"][0]["content"].insert(
        body["messages"][0]["content"].begin(),
        Json{{"type", "video_url"},
             {"video_url",
              {{"url", "data:application/octet-stream;base64," +
                           test::Base64(test::ReadFileBytes(video))}}}});
    if (frames > 0) body["num_frames"] = frames;
    long status = 0;
    const Json j = Post(srv.base, body, &status);
    ASSERT_EQ(status, 200) << j.dump();
    EXPECT_EQ(j["choices"][0]["message"]["content"], want.text) << frames;
    EXPECT_EQ(j["usage"]["prompt_tokens"], want.prompt_tokens) << frames;
  }
  // Fewer tiles with the max_tiles extension.
  {
    ChatRequest req = test::MakeChat(*pipe, "", "What is this?", {g.image_path}, 6);
    req.media.max_num_tiles = 1;
    const ChatResult want = pipe->Chat(req);
    Json body = ChatBody(m, "", "What is this?", {DataUrl(g.image_path)}, 6);
    body["max_tiles"] = 1;
    long status = 0;
    const Json j = Post(srv.base, body, &status);
    ASSERT_EQ(status, 200) << j.dump();
    EXPECT_EQ(j["choices"][0]["message"]["content"], want.text);
    EXPECT_EQ(j["usage"]["prompt_tokens"], want.prompt_tokens);
  }
  // The second turn of a conversation reuses the first turn's KV cache (same image, same
  // answer) and still answers as a fresh run does.
  {
    const Json first = ChatBody(m, g.system, g.user, {DataUrl(g.image_path)}, 8);
    long status = 0;
    const Json a = Post(srv.base, first, &status);
    ASSERT_EQ(status, 200) << a.dump();
    const std::string answer = a["choices"][0]["message"]["content"];
    Json second = first;
    second["messages"].push_back({{"role", "assistant"}, {"content", answer}});
    second["messages"].push_back({{"role", "user"}, {"content", "Tell me more."}});
    ChatRequest req = test::MakeChat(*pipe, g.system, g.user, {g.image_path}, 8);
    req.conversation.push_back({"assistant", {ContentPart::Text(answer)}});
    req.conversation.push_back({"user", {ContentPart::Text("Tell me more.")}});
    const ChatResult want = pipe->Chat(req);
    const Json b = Post(srv.base, second, &status);
    ASSERT_EQ(status, 200) << b.dump();
    EXPECT_EQ(b["choices"][0]["message"]["content"], want.text);
    EXPECT_GT(b["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(),
              a["usage"]["prompt_tokens"].get<int64_t>() / 2);
  }
}

TEST(Server, VideoFilesAndVideoLimits) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  // A 2-second MPEG-4 video in an mp4 container.
  const std::string path = test::MakeTempDir() + "/clip.mp4";
  test::VideoSpec spec;
  spec.container = "mp4";
  spec.encoder = "mpeg4";
  spec.frames = 48;
  spec.fps = 24;
  std::string why;
  if (!test::WriteTestVideo(path, spec, &why)) GTEST_SKIP() << "no mp4 encoder: " << why;
  const std::string url = "data:video/mp4;base64," + test::Base64(test::ReadFileBytes(path));
  auto video_body = [&](int64_t frames) {
    Json b = ChatBody(m, "", "What happens?", {}, 5);
    b["messages"][0]["content"].insert(b["messages"][0]["content"].begin(),
                                       Json{{"type", "video_url"}, {"video_url", {{"url", url}}}});
    if (frames > 0) b["num_frames"] = frames;
    return b;
  };
  auto opt = test::DefaultOptions(m);
  opt.limits.max_video_frames = 16;
  {
    auto srv = test::StartServer(m, opt);
    ChatRequest req = test::MakeChat(*pipe, "", "What happens?", {}, 5);
    req.conversation[0].content.insert(req.conversation[0].content.begin(),
                                       ContentPart::Video(path));
    req.media.num_frames = 8;
    const ChatResult want = pipe->Chat(req);
    long status = 0;
    const Json j = Post(srv.base, video_body(8), &status);
    ASSERT_EQ(status, 200) << j.dump();
    EXPECT_EQ(j["choices"][0]["message"]["content"], want.text);
    EXPECT_EQ(j["usage"]["prompt_tokens"], want.prompt_tokens);
    ExpectError(srv.base, video_body(17).dump(), 400, "at most 16", "num_frames over the limit");
  }
  opt.limits.max_video_seconds = 1.0;
  auto srv = test::StartServer(m, opt);
  ExpectError(srv.base, video_body(8).dump(), 413, "exceeds the limit of 1",
              "video duration limit");
}

TEST(Server, ConcurrentStreamsEqualSequentialAnswers) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  const auto g = test::ImageGolden(m);
  std::vector<Json> bodies;
  std::vector<std::string> want;
  const char* prompts[] = {"Hello",         "What is in the image?", "Write a poem",
                           "Count to five", "Describe a cat",        "Why is the sky blue?"};
  for (int i = 0; i < 6; ++i) {
    const bool image = i % 2 == 1;
    const int64_t n = 6 + 3 * i;
    bodies.push_back(ChatBody(
        m, "", prompts[i],
        image ? std::vector<std::string>{DataUrl(g.image_path)} : std::vector<std::string>{}, n));
    want.push_back(pipe->Chat(test::MakeChat(*pipe, "", prompts[i],
                                             image ? std::vector<std::string>{g.image_path}
                                                   : std::vector<std::string>{},
                                             n))
                       .text);
  }
  // Seeded sampling must not depend on the company either.
  bodies[4]["temperature"] = 0.9;
  bodies[4]["seed"] = 77;
  ChatRequest sampled = test::MakeChat(*pipe, "", prompts[4], {}, 6 + 12);
  sampled.generation.do_sample = true;
  sampled.generation.temperature = 0.9f;
  sampled.generation.seed = 77;
  want[4] = pipe->Chat(sampled).text;

  auto srv = test::StartServer(m, test::DefaultOptions(m));
  std::vector<StreamResult> got(bodies.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < bodies.size(); ++i)
    threads.emplace_back([&, i] { got[i] = Stream(srv.base, bodies[i]); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < bodies.size(); ++i) {
    EXPECT_EQ(got[i].http.status, 200) << got[i].http.body;
    EXPECT_TRUE(got[i].done) << i;
    EXPECT_EQ(got[i].text, want[i]) << "request " << i;
  }
  const std::string metrics = HttpCall("GET", srv.base + "/metrics").body;
  EXPECT_GT(MetricValue(metrics, "plm_decode_rows_total"),
            MetricValue(metrics, "plm_decode_steps_total"))
      << "decode steps were batched";
}

TEST(Server, BadRequestsGetClearErrorsAndTheServerKeepsServing) {
  const std::string m = test::ServerModels().at(0);
  auto opt = test::DefaultOptions(m);
  opt.limits.max_body_bytes = 1 << 20;
  opt.limits.max_image_bytes = 64 << 10;
  opt.limits.max_pixels = 1 << 20;
  opt.limits.max_tiles = 4;
  opt.limits.max_tokens = 512;
  opt.limits.max_media = 3;
  auto srv = test::StartServer(m, opt);
  const std::string tmp = test::MakeTempDir();
  const std::string ok = ChatBody(m, "", "hi", {}, 2).dump();
  auto with = [&](const std::string& key, const Json& v) {
    Json b = ParseJson(ok, "b");
    b[key] = v;
    return b.dump();
  };
  auto user_content = [&](const Json& content) {
    Json b = ParseJson(ok, "b");
    b["messages"] = Json::array({{{"role", "user"}, {"content", content}}});
    return b.dump();
  };
  auto image = [&](const std::string& url) {
    return user_content(Json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                     {{"type", "text"}, {"text", "what?"}}}));
  };
  const auto g = test::ImageGolden(m);

  ExpectError(srv.base, "{\"messages\": [", 400, "not valid JSON", "malformed JSON");
  ExpectError(srv.base, "[1, 2]", 400, "JSON object", "not an object");
  ExpectError(srv.base, with("messages", "hello"), 400, "messages must be an array",
              "messages type");
  ExpectError(srv.base, with("messages", Json::array()), 400, "messages is empty", "no messages");
  ExpectError(srv.base, with("temperature", "hot"), 400, "temperature must be a number",
              "temperature type");
  ExpectError(srv.base, with("temperature", 7), 400, "temperature must be between", "range");
  ExpectError(srv.base, with("max_tokens", -1), 400, "max_tokens", "negative max_tokens");
  ExpectError(srv.base, with("max_tokens", 100000), 400, "at most 512", "max_tokens limit");
  ExpectError(srv.base, with("n", 2), 400, "n must be 1", "n");
  ExpectError(srv.base, with("stop", Json::array({1})), 400, "stop[] must be a string", "stop");
  ExpectError(srv.base, with("top_logprobs", 2), 400, "needs logprobs", "top_logprobs");
  ExpectError(srv.base, with("max_tiles", 9), 400, "at most 4", "max_tiles limit");
  ExpectError(srv.base, with("model", "gpt-4"), 404, "does not exist", "unknown model");
  {
    Json b = ParseJson(ok, "b");
    b["messages"][0]["role"] = "wizard";
    ExpectError(srv.base, b.dump(), 400, "role \"wizard\" is not supported", "unknown role");
  }
  ExpectError(srv.base, user_content(Json::array({{{"type", "input_audio"}}})), 400,
              "not supported", "unknown part");
  ExpectError(srv.base, user_content(42), 400, "content must be a string or an array",
              "content type");
  // Media problems.
  ExpectError(srv.base, image("data:image/png;base64," + test::Base64("\x89PNG\r\n\x1a\ngarbage")),
              400, "image", "undecodable image");
  ExpectError(srv.base, image("data:image/png;base64,@@@@"), 400, "base64", "bad base64");
  ExpectError(srv.base, image("http://127.0.0.1:1/cat.png"), 400, "cannot fetch",
              "unreachable URL");
  ExpectError(srv.base, image("ftp://example.com/cat.png"), 400, "unsupported URL", "scheme");
  ExpectError(srv.base, image(g.image_path), 400, "local paths are not allowed", "local path");
  ExpectError(srv.base, image("data:image/png;base64," + test::Base64(std::string(100 << 10, 'x'))),
              413, "limit", "image bytes");
  ExpectError(
      srv.base,
      user_content(Json::array({{{"type", "image_url"}, {"image_url", {{"url", "data:,"}}}},
                                {{"type", "image_url"}, {"image_url", {{"url", "data:,"}}}},
                                {{"type", "image_url"}, {"image_url", {{"url", "data:,"}}}},
                                {{"type", "image_url"}, {"image_url", {{"url", "data:,"}}}}})),
      413, "the limit is 3", "media count");
  {
    // A 2000x1000 PNG header is over the 1 MP pixel limit: refused from the header alone.
    std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x07\xd0\0\0\x03\xe8\x08\x02\0\0\0", 29);
    png += std::string(4, '\0');
    ExpectError(srv.base, image("data:image/png;base64," + test::Base64(png)), 413, "pixels",
                "pixel limit");
  }
  {
    // A prompt that does not fit the context.
    const int64_t ctx = test::LoadModel(m)->model().config().text.max_position_embeddings;
    std::string big;
    for (int64_t i = 0; i < ctx; ++i) big += " hello";
    Json b = ChatBody(m, "", big, {}, 0);
    ExpectError(srv.base, b.dump(), 400, "context", "context overflow");
  }
  {
    // Bodies over the limit are refused by the HTTP layer with the same error format.
    const HttpResult r =
        HttpCall("POST", srv.base + "/v1/chat/completions", std::string(2 << 20, ' '));
    EXPECT_EQ(r.status, 413);
    EXPECT_NE(r.body.find("\"error\""), std::string::npos) << r.body;
  }
  {
    const HttpResult r = HttpCall("GET", srv.base + "/v1/nothing");
    EXPECT_EQ(r.status, 404);
    EXPECT_NE(r.body.find("no such endpoint"), std::string::npos) << r.body;
  }
  // Still serving.
  EXPECT_EQ(HttpCall("GET", srv.base + "/health").status, 200);
  long status = 0;
  const Json j = Post(srv.base, ParseJson(ok, "ok"), &status);
  EXPECT_EQ(status, 200) << j.dump();
  const std::string metrics = HttpCall("GET", srv.base + "/metrics").body;
  EXPECT_GE(MetricValue(metrics, "plm_requests_total{status=\"400\"}"), 15);
  EXPECT_GE(MetricValue(metrics, "plm_requests_total{status=\"413\"}"), 3);
}

TEST(Server, MediaFromHttpAndAllowedFolders) {
  const std::string m = test::ServerModels().at(0);
  auto pipe = test::LoadModel(m);
  const auto g = test::ImageGolden(m);
  const std::string want =
      pipe->Chat(test::MakeChat(*pipe, "", "What is this?", {g.image_path}, 6)).text;
  // A loopback web server with the image (and a redirect to it).
  httplib::Server web;
  const std::string bytes = test::ReadFileBytes(g.image_path);
  web.Get("/img.png", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(bytes, "image/png");
  });
  web.Get("/moved",
          [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/img.png"); });
  web.Get("/missing.png",
          [](const httplib::Request&, httplib::Response& res) { res.status = 404; });
  const int port = web.bind_to_any_port("127.0.0.1");
  std::thread t([&] { web.listen_after_bind(); });
  const std::string host = "http://127.0.0.1:" + std::to_string(port);

  auto opt = test::DefaultOptions(m);
  opt.allowed_media_dirs = {test::FixturesDir() + "/inputs"};
  auto srv = test::StartServer(m, opt);
  for (const std::string& url : std::vector<std::string>{host + "/img.png", host + "/moved",
                                                         g.image_path, "file://" + g.image_path}) {
    long status = 0;
    const Json j = Post(srv.base, ChatBody(m, "", "What is this?", {url}, 6), &status);
    EXPECT_EQ(status, 200) << url << ": " << j.dump();
    if (status == 200) {
      EXPECT_EQ(j["choices"][0]["message"]["content"], want) << url;
    }
  }
  ExpectError(srv.base, ChatBody(m, "", "x", {host + "/missing.png"}, 2).dump(), 400, "HTTP 404",
              "404 image");
  ExpectError(srv.base, ChatBody(m, "", "x", {"/etc/passwd"}, 2).dump(), 400, "outside the folders",
              "path outside the allow-list");
  ExpectError(srv.base,
              ChatBody(m, "", "x", {test::FixturesDir() + "/inputs/../models/x.png"}, 2).dump(),
              400, "does not exist", "escape with ..");
  web.stop();
  t.join();
}

TEST(Server, FullQueueGets429) {
  const std::string m = test::ServerModels().at(0);
  auto opt = test::DefaultOptions(m);
  opt.engine.max_batch = 1;
  opt.engine.max_queue = 0;
  auto srv = test::StartServer(m, opt);
  const int64_t budget = std::min<int64_t>(
      4000, test::LoadModel(m)->model().config().text.max_position_embeddings - 64);
  Json body = ChatBody(m, "", "Tell me everything.", {}, std::min<int64_t>(budget, 4000));
  body["stop"] = Json::array();  // (an empty list is allowed)
  std::atomic<bool> first_chunk{false}, release{false};
  std::thread busy([&] {
    Stream(srv.base, body, [&](const Json&) {
      first_chunk = true;
      return !release.load();  // hang up when told
    });
  });
  while (!first_chunk) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ExpectError(srv.base, ChatBody(m, "", "me too", {}, 2).dump(), 429, "capacity", "queue full");
  release = true;
  busy.join();
  // The place comes back once the hung-up request is cancelled.
  long status = 0;
  for (int i = 0; i < 200 && status != 200; ++i) {
    Post(srv.base, ChatBody(m, "", "me too", {}, 2), &status);
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(status, 200);
}

TEST(Server, ClientDisconnectCancelsTheRequest) {
  const std::string m = test::ServerModels().at(0);
  auto srv = test::StartServer(m, test::DefaultOptions(m));
  const int64_t budget = std::min<int64_t>(
      4000, test::LoadModel(m)->model().config().text.max_position_embeddings - 64);
  // Streaming: hang up after a few chunks.
  int chunks = 0;
  Stream(srv.base, ChatBody(m, "", "Go on and on.", {}, budget),
         [&](const Json&) { return ++chunks < 4; });
  // Non-streaming: the client gives up after a short timeout.
  const HttpResult r = HttpCall("POST", srv.base + "/v1/chat/completions",
                                ChatBody(m, "", "Go on and on.", {}, budget).dump(), {}, 1);
  EXPECT_EQ(r.status, 0);
  double cancelled = 0, active = -1;
  for (int i = 0; i < 400; ++i) {
    const std::string metrics = HttpCall("GET", srv.base + "/metrics").body;
    cancelled = MetricValue(metrics, "plm_completions_total{reason=\"cancelled\"}");
    active = MetricValue(metrics, "plm_active_requests");
    if (cancelled == 2 && active == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(cancelled, 2);
  EXPECT_EQ(active, 0);
}

TEST(Server, HealthModelsMetricsLogprobsAndTimeout) {
  const std::string m = test::ServerModels().at(0);
  auto opt = test::DefaultOptions(m);
  auto srv = test::StartServer(m, opt, /*load=*/false);
  // Not ready before the model is loaded.
  HttpResult h = HttpCall("GET", srv.base + "/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_NE(h.body.find("loading"), std::string::npos);
  ExpectError(srv.base, ChatBody(m, "", "hi", {}, 2).dump(), 503, "loading", "not loaded");
  auto pipe = test::LoadModel(m);
  srv.server->SetPipeline(pipe, pipe->default_generation());
  h = HttpCall("GET", srv.base + "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_NE(h.body.find("ok"), std::string::npos);

  const Json models = ParseJson(HttpCall("GET", srv.base + "/v1/models").body, "models");
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], m);
  EXPECT_EQ(HttpCall("GET", srv.base + "/v1/models/" + m).status, 200);
  EXPECT_EQ(HttpCall("GET", srv.base + "/v1/models/other").status, 404);

  // Logprobs in OpenAI's layout.
  Json body = ChatBody(m, "", "Hello", {}, 4);
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  long status = 0;
  const Json j = Post(srv.base, body, &status);
  ASSERT_EQ(status, 200) << j.dump();
  const Json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u) << j.dump();
  std::string joined;
  for (const auto& c : content) {
    EXPECT_TRUE(c["token"].is_string());
    EXPECT_LE(c["logprob"].get<double>(), 0.0);
    EXPECT_TRUE(c["bytes"].is_array());
    ASSERT_EQ(c["top_logprobs"].size(), 2u);
    EXPECT_EQ(c["top_logprobs"][0]["token"], c["token"]);
    joined += c["token"].get<std::string>();
  }
  EXPECT_EQ(joined, j["choices"][0]["message"]["content"]);
  // Streaming with usage requested as OpenAI does it: a last chunk with empty choices.
  body["stream_options"] = {{"include_usage", true}};
  const StreamResult s = Stream(srv.base, body);
  ASSERT_GE(s.chunks.size(), 3u);
  EXPECT_TRUE(s.chunks.back()["choices"].empty());
  EXPECT_EQ(s.chunks.back()["usage"]["completion_tokens"], 4);
  EXPECT_TRUE(s.chunks[1]["choices"][0]["logprobs"]["content"].is_array());

  const std::string metrics = HttpCall("GET", srv.base + "/metrics").body;
  for (const char* series :
       {"plm_requests_total{status=\"200\"}", "plm_requests_total{status=\"503\"}",
        "plm_prompt_tokens_total", "plm_completion_tokens_total", "plm_queue_depth",
        "plm_active_sequences", "plm_time_to_first_token_seconds_count",
        "plm_request_duration_seconds_count", "plm_ready"})
    EXPECT_GE(MetricValue(metrics, series), 0) << series << "\n" << metrics;
  EXPECT_EQ(MetricValue(metrics, "plm_completion_tokens_total"), 8);
  EXPECT_NE(metrics.find("# TYPE plm_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(metrics.find("plm_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2"),
            std::string::npos);
}

TEST(Server, RequestTimeoutIsAnError) {
  const std::string m = test::ServerModels().at(0);
  auto opt = test::DefaultOptions(m);
  opt.request_timeout_s = 0.2;
  auto srv = test::StartServer(m, opt);
  const int64_t budget = std::min<int64_t>(
      4000, test::LoadModel(m)->model().config().text.max_position_embeddings - 64);
  Json body = ChatBody(m, "", "Go on.", {}, budget);
  // Long generations are cut by the timeout: an error, not a silently short answer.
  ExpectError(srv.base, body.dump(), 503, "time limit", "timeout");
  const StreamResult s = Stream(srv.base, body);
  ASSERT_FALSE(s.chunks.empty());
  EXPECT_TRUE(s.chunks.back().contains("error")) << s.chunks.back().dump();
  EXPECT_TRUE(s.done);
}

TEST(Server, GracefulShutdownFinishesInFlightRequests) {
  const std::string m = test::ServerModels().at(0);
  auto opt = test::DefaultOptions(m);
  opt.shutdown_grace_s = 30;
  auto srv = test::StartServer(m, opt);
  std::atomic<bool> started{false};
  StreamResult got;
  std::thread client([&] {
    got = Stream(srv.base, ChatBody(m, "", "Tell me a story.", {}, 300), [&](const Json&) {
      started = true;
      return true;
    });
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::thread stopper([&] { srv.server->Shutdown(); });
  // New requests are refused while the in-flight one finishes.
  for (int i = 0; i < 100; ++i) {
    const HttpResult h = HttpCall("GET", srv.base + "/health", "", {}, 2);
    if (h.status == 503 || h.status == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stopper.join();
  client.join();
  srv.server->Wait();
  EXPECT_TRUE(got.done);
  ASSERT_FALSE(got.chunks.empty());
  EXPECT_EQ(got.chunks.back()["usage"]["completion_tokens"].get<int64_t>() > 0, true);
  EXPECT_EQ(HttpCall("GET", srv.base + "/health", "", {}, 2).status, 0) << "stopped listening";
}

}  // namespace
}  // namespace plm
