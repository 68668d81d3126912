// Streaming detokenization: feeding ids one at a time must concatenate to the full decode and
// never return broken UTF-8, for every fixture string, with and without special tokens and
// with the cleanup forced on.
#include <gtest/gtest.h>

#include <iostream>

#include "core/mapped_file.h"
#include "plm/error.h"
#include "support/test_support.h"
#include "text/streaming_decoder.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "text_test_util.h"

namespace plm {
namespace {

// The fixture tokenizer with a config that forces the (BPE-destructive) cleanup on.
Tokenizer WithForcedCleanup(const std::string& dir) {
  Json config = ReadJsonFile(dir + "/tokenizer_config.json");
  config["clean_up_tokenization_spaces"] = true;
  config["clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"] = true;
  return Tokenizer::FromJson(ReadJsonFile(dir + "/tokenizer.json"), config, dir);
}

// Streams `ids` and returns the problems found (empty when fine).
std::string CheckStream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  const std::string full = tok.Decode(ids, skip);
  StreamingDecoder dec(tok, skip);
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = dec.Put(id);
    if (!IsValidUtf8(piece)) return "a chunk is not valid UTF-8";
    joined += piece;
    if (full.compare(0, joined.size(), joined) != 0)
      return "streamed text is not a prefix of the decode";
  }
  joined += dec.Flush();
  if (joined != full) return "streamed " + test::Quote(joined) + " != decode " + test::Quote(full);
  return "";
}

TEST(StreamingDecoder, EveryFixtureString) {
  const auto dirs = test::TokenizerDirs();
  ASSERT_FALSE(dirs.empty());
  const auto cases = test::ReadOrderedFixture("encode_decode.json");
  // Extra strings where the cleanup and split characters matter (checked against Decode).
  std::vector<std::string> texts;
  for (const auto& c : cases) texts.push_back(c["text"].get<std::string>());
  texts.push_back("Hello , world . I do n't know ' s , it 's 've 're 'm ! ?");
  texts.push_back("a  ' s  .  ,x y . z");
  texts.push_back("🇫🇷 ñ 日本 ' ' ' ' .");
  size_t failed = 0, total = 0;
  for (const std::string& dir : dirs) {
    const Tokenizer& plain = test::CachedTokenizer(dir);
    const Tokenizer cleaned = WithForcedCleanup(dir);
    for (const std::string& text : texts) {
      for (const Tokenizer* tok : {&plain, &cleaned}) {
        for (bool special : {false, true}) {
          for (bool skip : {false, true}) {
            ++total;
            const std::string problem = CheckStream(*tok, tok->Encode(text, special), skip);
            if (!problem.empty()) {
              ++failed;
              std::cout << "[FAIL] " << test::Quote(text).substr(0, 60)
                        << " cleanup=" << (tok == &cleaned) << " special=" << special
                        << " skip=" << skip << "\n         " << problem << "\n";
            }
          }
        }
      }
      std::cout << "[done] " << dir.substr(dir.rfind('/') + 1) << " "
                << test::Quote(text).substr(0, 60) << "\n";
    }
  }
  std::cout << total - failed << " passed, " << failed << " failed (streams)\n";
  EXPECT_EQ(failed, 0u);
}

TEST(StreamingDecoder, HoldsSplitCharactersAndFlushesReplacement) {
  const auto dirs = test::TokenizerDirs();
  ASSERT_FALSE(dirs.empty());
  const Tokenizer& tok = test::CachedTokenizer(dirs[0]);
  // A 4-byte emoji is usually several byte tokens; nothing may come out mid-character.
  const auto ids = tok.Encode("😀", false);
  ASSERT_GT(ids.size(), 1u);
  StreamingDecoder dec(tok);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(dec.Put(ids[i]), "");
  EXPECT_EQ(dec.Put(ids.back()), "😀");
  // An unfinished character at the end is shown as U+FFFD, like Decode shows it.
  StreamingDecoder cut(tok);
  for (size_t i = 0; i + 1 < ids.size(); ++i) cut.Put(ids[i]);
  const std::vector<int32_t> head(ids.begin(), ids.end() - 1);
  EXPECT_EQ(cut.Flush(), tok.Decode(head));
  EXPECT_THROW(cut.Put(-5), Error);
}

TEST(Tokenizer, CleanUpTokenizationSpacesRules) {
  // transformers' clean_up_tokenization applied in Python to this text gives the expectation.
  EXPECT_EQ(CleanUpTokenizationSpaces("a , b . c ! d ? e ' f n't g 'm h 's i 've j 're x  ' s"),
            "a, b. c! d? e'fn't g'm h's i've j're x's");
}

TEST(Tokenizer, CleanupIsIgnoredForBpeUnlessForced) {
  // transformers 5 skips clean_up_tokenization_spaces for BPE tokenizers even when the config
  // sets it (this PerceptionLM config does), unless the force flag is present.
  const auto dirs = test::TokenizerDirs();
  ASSERT_FALSE(dirs.empty());
  const Tokenizer& plain = test::CachedTokenizer(dirs[0]);
  const Tokenizer forced = WithForcedCleanup(dirs[0]);
  const auto ids = plain.Encode("Hello , world .", false);
  EXPECT_EQ(plain.Decode(ids), "Hello , world .");
  EXPECT_EQ(plain.Decode(ids, false, true), "Hello , world .");
  EXPECT_EQ(forced.Decode(ids), "Hello, world.");
  EXPECT_EQ(forced.Decode(ids, false, false), "Hello , world .");
}

}  // namespace
}  // namespace plm
