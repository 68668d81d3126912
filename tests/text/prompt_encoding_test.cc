// Placeholder expansion and BOS handling of rendered chat prompts.
#include <gtest/gtest.h>

#include "plm/error.h"
#include "text/chat_template.h"
#include "text/prompt_encoding.h"
#include "text/tokenizer.h"
#include "text_test_util.h"

namespace plm {
namespace {

constexpr int32_t kImg = 900;
constexpr int32_t kVid = 901;

TEST(ExpandMediaPlaceholders, ReplacesEachPlaceholderInOrder) {
  const std::vector<int32_t> ids = {1, kImg, 2, kVid, kImg, 3};
  const std::vector<int64_t> per_image = {2, 3};
  const std::vector<int64_t> per_video = {1};
  const auto out = ExpandMediaPlaceholders(ids, kImg, per_image, kVid, per_video);
  EXPECT_EQ(out, (std::vector<int32_t>{1, kImg, kImg, 2, kVid, kImg, kImg, kImg, 3}));
}

TEST(ExpandMediaPlaceholders, CountMismatchNamesBothCounts) {
  const std::vector<int32_t> ids = {kImg, kImg};
  const std::vector<int64_t> one = {4};
  try {
    ExpandMediaPlaceholders(ids, kImg, one, kVid, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("2 image placeholder(s) but 1 image(s)"),
              std::string::npos)
        << e.what();
  }
  const std::vector<int64_t> two_videos = {4, 4};
  try {
    ExpandMediaPlaceholders(std::vector<int32_t>{kVid}, kImg, {}, kVid, two_videos);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 video placeholder(s) but 2 video(s)"),
              std::string::npos)
        << e.what();
  }
  const std::vector<int64_t> negative = {-1};
  EXPECT_THROW(ExpandMediaPlaceholders(std::vector<int32_t>{kImg}, kImg, negative, kVid, {}),
               Error);
  EXPECT_THROW(ExpandMediaPlaceholders(std::vector<int32_t>{kImg}, kImg, one, kImg, {}), Error);
}

TEST(ExpandMediaPlaceholders, RealPromptWithTilesTimesTokens) {
  // A rendered PerceptionLM prompt with two images: each <|image|> becomes tiles x tokens.
  for (const std::string& dir : test::TokenizerDirs()) {
    const Tokenizer& tok = test::CachedTokenizer(dir);
    const ChatTemplate tmpl = ChatTemplate::FromDirectory(dir);
    const auto messages = nlohmann::ordered_json::parse(
        R"([{"role": "user", "content": [{"type": "image"}, {"type": "image"},
             {"type": "video"}, {"type": "text", "text": "Compare."}]}])");
    const auto ids = EncodeChatPrompt(tok, tmpl.Render(messages, true));
    const int32_t image = tok.TokenToId("<|image|>");
    const int32_t video = tok.TokenToId("<|video|>");
    ASSERT_GE(image, 0);
    ASSERT_GE(video, 0);
    const std::vector<int64_t> per_image = {5 * 16, 1 * 16};
    const std::vector<int64_t> per_video = {8 * 16};
    const auto out = ExpandMediaPlaceholders(ids, image, per_image, video, per_video);
    EXPECT_EQ(std::count(out.begin(), out.end(), image), 96);
    EXPECT_EQ(std::count(out.begin(), out.end(), video), 128);
    EXPECT_EQ(out.size(), ids.size() + 96 + 128 - 3);
    EXPECT_EQ(std::count(out.begin(), out.end(), tok.bos_token_id()), 1) << "BOS doubled";
  }
}

TEST(EncodeChatPrompt, AddsBosOnlyWhenTheTextLacksIt) {
  for (const std::string& dir : test::TokenizerDirs()) {
    const Tokenizer& tok = test::CachedTokenizer(dir);
    const std::string bos = tok.bos_token();
    ASSERT_FALSE(bos.empty());
    const auto with = EncodeChatPrompt(tok, bos + "Hi");
    const auto without = EncodeChatPrompt(tok, "Hi");
    EXPECT_EQ(with, without);
    EXPECT_EQ(std::count(with.begin(), with.end(), tok.bos_token_id()), 1);
    // Plain Encode with special tokens would double it (the HF pitfall this avoids).
    const auto doubled = tok.Encode(bos + "Hi", true);
    EXPECT_EQ(std::count(doubled.begin(), doubled.end(), tok.bos_token_id()), 2);
  }
}

}  // namespace
}  // namespace plm
