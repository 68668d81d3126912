// Bad input: malformed tokenizer files, invalid UTF-8, unsupported components. Every failure
// must be a plm::Error with a code and a message naming the file and the problem.
#include <gtest/gtest.h>

#include "core/mapped_file.h"
#include "plm/error.h"
#include "support/test_support.h"
#include "text/tokenizer.h"
#include "text_test_util.h"

namespace plm {
namespace {

// A small but complete byte-level BPE tokenizer.json, edited per test.
Json TinyTokenizerJson() {
  // Expected ids in these tests were checked with Hugging Face tokenizers on the same JSON.
  return Json::parse(R"({
    "version": "1.0", "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\s+|\\S+"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "added_tokens": [{"id": 7, "content": "<|x|>", "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false, "special": true}],
    "model": {"type": "BPE", "ignore_merges": true,
              "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "c": 4, "abc": 5, "Ġa": 6},
              "merges": [["a", "b"], "ab c", ["Ġ", "a"]]}
  })");
}

void ExpectError(const Json& tj, ErrorCode code, const std::string& needle) {
  try {
    Tokenizer::FromJson(tj, Json::object(), "bad/tokenizer.json");
    FAIL() << "expected an error containing " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad/tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, TinyTokenizerWorks) {
  const Tokenizer tok = Tokenizer::FromJson(TinyTokenizerJson(), Json::object(), "tiny");
  EXPECT_EQ(tok.Encode("abc", false), (std::vector<int32_t>{5}));
  EXPECT_EQ(tok.Encode("ab<|x|> a", false), (std::vector<int32_t>{2, 7, 3, 0}));
  EXPECT_EQ(tok.Decode(std::vector<int32_t>{2, 7, 3, 0}), "ab<|x|> a");
  EXPECT_EQ(tok.Decode(std::vector<int32_t>{2, 7, 3, 0}, true), "ab a");
  EXPECT_EQ(tok.vocab_size(), 8u);
}

TEST(TokenizerErrors, MissingModel) {
  Json tj = TinyTokenizerJson();
  tj.erase("model");
  ExpectError(tj, ErrorCode::kCorrupt, "missing \"model\"");
}

TEST(TokenizerErrors, MissingVocabOrMerges) {
  Json tj = TinyTokenizerJson();
  tj["model"].erase("vocab");
  ExpectError(tj, ErrorCode::kCorrupt, "vocab");
  tj = TinyTokenizerJson();
  tj["model"].erase("merges");
  ExpectError(tj, ErrorCode::kCorrupt, "merges");
}

TEST(TokenizerErrors, BadMerges) {
  Json tj = TinyTokenizerJson();
  tj["model"]["merges"].push_back("a b c");
  ExpectError(tj, ErrorCode::kCorrupt, "merge 3");
  tj = TinyTokenizerJson();
  tj["model"]["merges"].push_back(Json::array({"a", "zz"}));
  ExpectError(tj, ErrorCode::kCorrupt, "not in the vocabulary: \"zz\"");
  tj = TinyTokenizerJson();
  tj["model"]["merges"].push_back(Json::array({"b", "a"}));  // "ba" is not in the vocab
  ExpectError(tj, ErrorCode::kCorrupt, "\"ba\"");
  tj = TinyTokenizerJson();
  tj["model"]["merges"].push_back(42);
  ExpectError(tj, ErrorCode::kCorrupt, "merge 3");
}

TEST(TokenizerErrors, BadVocabAndAddedTokens) {
  Json tj = TinyTokenizerJson();
  tj["model"]["vocab"]["q"] = "seven";
  ExpectError(tj, ErrorCode::kCorrupt, "vocab entry \"q\"");
  tj = TinyTokenizerJson();
  tj["added_tokens"].push_back(Json::object({{"id", 9}}));
  ExpectError(tj, ErrorCode::kCorrupt, "content");
}

TEST(TokenizerErrors, UnsupportedComponents) {
  Json tj = TinyTokenizerJson();
  tj["model"]["type"] = "Unigram";
  ExpectError(tj, ErrorCode::kUnsupported, "Unigram");
  tj = TinyTokenizerJson();
  tj["normalizer"] = Json::object({{"type", "NFKC"}});
  ExpectError(tj, ErrorCode::kUnsupported, "NFKC");
  tj = TinyTokenizerJson();
  tj["decoder"] = Json::object({{"type", "WordPiece"}});
  ExpectError(tj, ErrorCode::kUnsupported, "WordPiece");
  tj = TinyTokenizerJson();
  tj["pre_tokenizer"] = Json::object({{"type", "Whitespace"}});
  ExpectError(tj, ErrorCode::kUnsupported, "Whitespace");
}

TEST(TokenizerErrors, BadRegex) {
  Json tj = TinyTokenizerJson();
  tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  ExpectError(tj, ErrorCode::kCorrupt, "regex");
}

TEST(TokenizerErrors, MissingAndMalformedFiles) {
  const std::string dir = test::MakeTempDir();
  try {
    Tokenizer::FromDirectory(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
  }
  test::WriteFile(dir + "/tokenizer.json", "{\"model\": [1, 2");
  try {
    Tokenizer::FromDirectory(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir + "/tokenizer.json"), std::string::npos);
  }
  test::WriteFile(dir + "/tokenizer.json", TinyTokenizerJson().dump());
  test::WriteFile(dir + "/tokenizer_config.json", "[1]");
  EXPECT_THROW(Tokenizer::FromDirectory(dir), Error);
}

TEST(TokenizerErrors, InvalidUtf8NamesTheByteOffset) {
  const auto dirs = test::TokenizerDirs();
  ASSERT_FALSE(dirs.empty());
  const Tokenizer& tok = test::CachedTokenizer(dirs[0]);
  const std::vector<std::pair<std::string, size_t>> bad = {
      {"abc\xff", 3},      {"\xc3", 0},      {"ok \xe2\x82", 3},
      {"\xed\xa0\x80", 0}, {"x\xc0\xaf", 1}, {"\xf4\x90\x80\x80", 0},
      {"abc\x80", 3}};
  for (const auto& [text, offset] : bad) {
    try {
      tok.Encode(text, false);
      FAIL() << "accepted invalid UTF-8 " << test::Quote(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(offset)),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(tok.Decode(std::vector<int32_t>{1, -1}), Error);
  // Ids without a token are skipped, as tokenizers does.
  EXPECT_EQ(tok.Decode(std::vector<int32_t>{9906, 1 << 30}),
            tok.Decode(std::vector<int32_t>{9906}));
}

TEST(TokenizerErrors, AddedTokenFlags) {
  Json tj = TinyTokenizerJson();
  tj["added_tokens"] = Json::parse(R"([
    {"id": 7, "content": "<L>", "lstrip": true, "special": false, "normalized": false},
    {"id": 8, "content": "<R>", "rstrip": true, "special": false, "normalized": false},
    {"id": 9, "content": "ab", "single_word": true, "special": false, "normalized": true}])");
  const Tokenizer tok = Tokenizer::FromJson(tj, Json::object(), "flags");
  // lstrip swallows the spaces before <L>; rstrip the spaces after <R>.
  EXPECT_EQ(tok.Encode("a  <L>", false), (std::vector<int32_t>{0, 7}));
  EXPECT_EQ(tok.Encode("<R>  a", false), (std::vector<int32_t>{8, 0}));
  // single_word: "ab" alone is the added token, inside "abc" it is not. Its content is already
  // in the model vocabulary, so (as in tokenizers) it takes that id, not the one in the file.
  EXPECT_EQ(tok.Encode("ab", false), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok.Encode("abc", false), (std::vector<int32_t>{5}));
  EXPECT_EQ(tok.Encode("x ab y", false), (std::vector<int32_t>{3, 2, 3}));
  EXPECT_EQ(tok.Encode("ab<L>", false), (std::vector<int32_t>{2, 7}));
  EXPECT_FALSE(tok.IsSpecial(7));
}

TEST(TokenizerErrors, AddedTokensFromConfigGetTheNextFreeIds) {
  // tokenizer_config.json's added_tokens_decoder adds tokens tokenizer.json lacks; as in
  // tokenizers' add_tokens, new contents take the next free ids in key order and known
  // contents keep their ids (the keys are not trusted). Checked with transformers 5.17.
  Json config = Json::parse(R"({"added_tokens_decoder": {
      "10": {"content": "<b2>", "special": true},
      "9": {"content": "<b1>", "special": false},
      "7": {"content": "<|x|>", "special": true}}})");
  const Tokenizer tok = Tokenizer::FromJson(TinyTokenizerJson(), config, "cfg");
  EXPECT_EQ(tok.TokenToId("<|x|>"), 7);
  EXPECT_EQ(tok.TokenToId("<b1>"), 8);
  EXPECT_EQ(tok.TokenToId("<b2>"), 9);
  EXPECT_TRUE(tok.IsSpecial(9));
  EXPECT_EQ(tok.Encode("a<b2><b1>", false), (std::vector<int32_t>{0, 9, 8}));
  EXPECT_EQ(tok.vocab_size(), 10u);
  config["added_tokens_decoder"]["x"] = config["added_tokens_decoder"]["9"];
  EXPECT_THROW(Tokenizer::FromJson(TinyTokenizerJson(), config, "cfg"), Error);
}

TEST(TokenizerErrors, PostProcessorFromConfigFlags) {
  Json config = Json::parse(R"({"bos_token": "<|x|>", "add_bos_token": true})");
  const Tokenizer tok = Tokenizer::FromJson(TinyTokenizerJson(), config, "cfg");
  EXPECT_EQ(tok.Encode("a", true), (std::vector<int32_t>{7, 0}));
  EXPECT_EQ(tok.Encode("a", false), (std::vector<int32_t>{0}));
  EXPECT_EQ(tok.bos_token_id(), 7);
}

}  // namespace
}  // namespace plm
