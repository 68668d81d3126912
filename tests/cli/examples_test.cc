// The example programs (examples/, public headers only) build with the project and run on every
// fixture model: describe_image streams the same answer Pipeline::Chat gives, generate_logprobs
// prints a batch with log-probabilities.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "cli/cli_util.h"
#include "plm/pipeline.h"
#include "support/test_support.h"

namespace plm {
namespace {

TEST(Examples, DescribeImage) {
  const std::string image = test::AnyFixtureImage();
  for (const auto& model : test::FixtureModels()) {
    const test::RunResult r = test::Run(std::string(PLM_BINARY_DIR) + "/examples/describe_image",
                                        {model, image, "What is in the picture?", "6"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    auto pipe = Pipeline::FromPretrained(model);
    ChatRequest req;
    req.conversation = {
        {"user", {ContentPart::Image(image), ContentPart::Text("What is in the picture?")}}};
    req.generation = pipe->default_generation();
    req.generation.max_new_tokens = 6;
    const ChatResult want = pipe->Chat(req);
    EXPECT_EQ(r.out.substr(0, want.text.size() + 1), want.text + "\n") << model;
    const std::string summary = "[" + std::to_string(want.prompt_tokens) + " prompt tokens (" +
                                std::to_string(want.image_tiles) + " image tiles)";
    EXPECT_NE(r.out.find(summary), std::string::npos) << r.out;
  }
  // Usage errors.
  EXPECT_EQ(test::Run(std::string(PLM_BINARY_DIR) + "/examples/describe_image", {}).code, 2);
  const test::RunResult missing = test::Run(
      std::string(PLM_BINARY_DIR) + "/examples/describe_image", {"/no/such/model", image});
  EXPECT_EQ(missing.code, 3) << missing.err;
}

TEST(Examples, GenerateLogprobs) {
  for (const auto& model : test::FixtureModels()) {
    const test::RunResult r =
        test::Run(std::string(PLM_BINARY_DIR) + "/examples/generate_logprobs", {model, "4"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("row 0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("row 1"), std::string::npos) << r.out;
    const std::regex re("logprob +(-?[0-9.]+)");
    int n = 0;
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), re);
         it != std::sregex_iterator(); ++it, ++n)
      EXPECT_LE(std::stod((*it)[1]), 0.0) << r.out;
    EXPECT_GT(n, 0) << r.out;
  }
}

}  // namespace
}  // namespace plm
