// A processor_config.json whose tile size differs from the vision tower's input size (a model
// folder assembled from mismatched files) gives a clear error naming both sizes for requests with
// images — through Pipeline::Chat, the Engine (server path) and GetImageFeatures — instead of the
// vision tower reading past the pixel buffer; text-only requests keep working.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "plm/error.h"
#include "plm/pipeline.h"
#include "plm/scheduler.h"
#include "support/test_support.h"

namespace plm {
namespace {

namespace fs = std::filesystem;

// A copy of `model` (files linked) whose processor tiles at twice the model's tile size.
std::string FolderWithDoubledTileSize(const std::string& model) {
  const std::string dir = test::MakeTempDir();
  for (const auto& e : fs::directory_iterator(model))
    if (e.path().filename() != "processor_config.json")
      fs::create_symlink(e.path(), fs::path(dir) / e.path().filename());
  std::ifstream in(model + "/processor_config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::smatch m;
  const std::regex tile("\"tile_size\"\\s*:\\s*(\\d+)");
  EXPECT_TRUE(std::regex_search(text, m, tile)) << "no tile_size in " << model;
  const std::string size = m[1].str(), doubled = std::to_string(2 * std::stoi(size));
  // tile_size and the size fields carry the same value in PerceptionLM processor configs.
  text = std::regex_replace(text, std::regex(":\\s*" + size + "\\b"), ": " + doubled);
  test::WriteFile(dir + "/processor_config.json", text);
  return dir;
}

ChatRequest Ask(const Pipeline& pipe, const std::string& image) {
  ChatRequest r;
  Message m{"user", {}};
  if (!image.empty()) m.content.push_back(ContentPart::Image(image));
  m.content.push_back(ContentPart::Text("What is this?"));
  r.conversation = {m};
  r.generation = pipe.default_generation();
  r.generation.max_new_tokens = 2;
  return r;
}

void ExpectTileSizeError(const std::function<void()>& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << ": no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << what;
    EXPECT_NE(std::string(e.what()).find("vision tower takes"), std::string::npos)
        << what << ": " << e.what();
  }
}

TEST(TileSizeMismatch, ImageRequestsFailClearlyTextStillWorks) {
  const auto models = test::FixtureModels();
  ASSERT_FALSE(models.empty());
  const std::string model = models[0], image = test::AnyFixtureImage();
  ASSERT_FALSE(image.empty());
  const std::string dir = FolderWithDoubledTileSize(model);
  auto pipe = Pipeline::FromPretrained(dir);

  ExpectTileSizeError([&] { pipe->Chat(Ask(*pipe, image)); }, "Pipeline::Chat");
  EXPECT_FALSE(pipe->Chat(Ask(*pipe, "")).tokens.empty()) << "text-only request";

  // The model API on its own: pixels that say they are of another size.
  const ProcessorOutputs prepared = pipe->Prepare(Ask(*pipe, image));
  ASSERT_GT(prepared.image_tiles, 0);
  PixelInputs px{prepared.pixel_values.data(), 1, prepared.image_tile_size};
  ExpectTileSizeError([&] { pipe->model().GetImageFeatures(px); }, "GetImageFeatures");

  // The server's engine: the request ends with an error event, the engine keeps serving.
  Engine engine(*pipe);
  for (const std::string& img : {image, std::string()}) {
    auto ticket = engine.TryAcquire();
    ASSERT_TRUE(ticket.has_value());
    EngineRequest req;
    req.inputs = pipe->Prepare(Ask(*pipe, img));
    req.generation = pipe->default_generation();
    req.generation.max_new_tokens = 2;
    auto stream = engine.Submit(std::move(*ticket), std::move(req));
    EngineEvent ev;
    while (!ev.finished) stream->Next(&ev, std::chrono::milliseconds(100));
    if (img.empty()) {
      EXPECT_NE(ev.finish_reason, FinishReason::kError) << ev.error;
    } else {
      EXPECT_EQ(ev.finish_reason, FinishReason::kError);
      EXPECT_NE(ev.error.find("vision tower takes"), std::string::npos) << ev.error;
    }
  }
  engine.Shutdown(std::chrono::milliseconds(1000));
}

}  // namespace
}  // namespace plm
