#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "plm/error.h"
#include "support/test_support.h"

namespace plm {
namespace {

std::string Header(const std::string& json) {
  std::string s(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(s.data(), &n, 8);
  return s + json;
}

// Writes `bytes` to a temp file and expects loading it to fail with `code` and `needle` in the
// message.
void ExpectLoadError(const std::string& bytes, ErrorCode code, const std::string& needle) {
  const std::string path = test::MakeTempDir() + "/bad.safetensors";
  test::WriteFile(path, bytes);
  try {
    SafetensorsFile f(path);
    FAIL() << "expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "error must name the file";
  }
}

TEST(Safetensors, RoundTrip) {
  const std::string path = test::MakeTempDir() + "/ok.safetensors";
  std::map<std::string, TensorData> t;
  TensorData a;
  a.dtype = DType::kBF16;
  a.shape = {2, 2};
  const uint16_t vals[4] = {F32ToBf16(1.0f), F32ToBf16(-2.5f), F32ToBf16(0.0f), F32ToBf16(3.0f)};
  a.bytes.resize(8);
  std::memcpy(a.bytes.data(), vals, 8);
  t["a"] = a;
  TensorData b;
  b.dtype = DType::kI64;
  b.shape = {3};
  const int64_t iv[3] = {7, -1, 128002};
  b.bytes.resize(24);
  std::memcpy(b.bytes.data(), iv, 24);
  t["b"] = b;
  WriteSafetensors(path, t, {{"format", "pt"}});

  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto af = f.Get("a").ToF32();
  EXPECT_EQ(af, (std::vector<float>{1.0f, -2.5f, 0.0f, 3.0f}));
  EXPECT_EQ(f.Get("b").ToI64(), (std::vector<int64_t>{7, -1, 128002}));
  EXPECT_EQ(f.Get("a").ShapeString(), "[2, 2]");
}

TEST(Safetensors, MissingTensorNamesIt) {
  const std::string path = test::MakeTempDir() + "/ok.safetensors";
  WriteSafetensors(path, {});
  SafetensorsFile f(path);
  try {
    f.Get("model.norm.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos);
  }
}

TEST(Safetensors, Empty) {
  ExpectLoadError("", ErrorCode::kCorrupt, "shorter than");
}
TEST(Safetensors, ShortHeaderLength) {
  ExpectLoadError("abc", ErrorCode::kCorrupt, "shorter than");
}

TEST(Safetensors, HeaderLengthPastEnd) {
  std::string s(8, '\0');
  const uint64_t n = 1000;
  std::memcpy(s.data(), &n, 8);
  ExpectLoadError(s + "{}", ErrorCode::kCorrupt, "past the end");
}

TEST(Safetensors, HugeHeaderLength) {
  std::string s(8, '\xff');
  ExpectLoadError(s, ErrorCode::kCorrupt, "exceeds");
}

TEST(Safetensors, BadJson) {
  ExpectLoadError(Header("{\"a\": [1,"), ErrorCode::kCorrupt, "not valid JSON");
}
TEST(Safetensors, NotObject) {
  ExpectLoadError(Header("[1,2]"), ErrorCode::kCorrupt, "not a JSON object");
}

TEST(Safetensors, OffsetsPastEnd) {
  ExpectLoadError(
      Header(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})") + std::string(8, '\0'),
      ErrorCode::kCorrupt, "past the end of the data section");
}

TEST(Safetensors, SizeMismatch) {
  ExpectLoadError(
      Header(R"({"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,4]}})") + std::string(4, '\0'),
      ErrorCode::kCorrupt, "need 8");
}

TEST(Safetensors, Overlap) {
  ExpectLoadError(Header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})") +
                      std::string(12, '\0'),
                  ErrorCode::kCorrupt, "overlapping");
}

TEST(Safetensors, BeginAfterEnd) {
  ExpectLoadError(
      Header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})") + std::string(8, '\0'),
      ErrorCode::kCorrupt, "begin > end");
}

TEST(Safetensors, UnknownDtype) {
  ExpectLoadError(
      Header(R"({"a":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})") + std::string(1, '\0'),
      ErrorCode::kUnsupported, "F8_E9");
}

TEST(Safetensors, NegativeDim) {
  ExpectLoadError(
      Header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})") + std::string(4, '\0'),
      ErrorCode::kCorrupt, "negative");
}

TEST(Safetensors, ShapeOverflow) {
  ExpectLoadError(
      Header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})") +
          std::string(4, '\0'),
      ErrorCode::kCorrupt, "overflow");
}

TEST(Safetensors, MissingFile) {
  try {
    SafetensorsFile f("/nonexistent/model.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace plm
