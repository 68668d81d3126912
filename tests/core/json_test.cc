// JSON helpers: malformed or out-of-range input is a plm::Error naming the source, never an
// escaping nlohmann exception or undefined behaviour (both found by the fuzzers).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/dtype.h"
#include "core/json.h"
#include "plm/error.h"

namespace plm {
namespace {

ErrorCode CodeOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;  // "no error" is never what these tests expect
}

TEST(Json, NumberOverflowIsACorruptError) {
  EXPECT_EQ(CodeOf([] { ParseJson("{\"a\": 1E999999}", "cfg"); }), ErrorCode::kCorrupt);
  EXPECT_EQ(CodeOf([] { ParseJson("[33333333333333333333333333333E33333333]", "cfg"); }),
            ErrorCode::kCorrupt);
  try {
    ParseJson("{\"a\": 1E999999}", "my.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my.json"), std::string::npos) << e.what();
  }
}

TEST(Json, IntegersOutOfRangeAreRejected) {
  const Json j = ParseJson(
      "{\"big\": 1.2e257, \"inf\": 1e308, \"u\": 18446744073709551615, \"half\": 2.5, \"two\": "
      "2.0, "
      "\"neg\": -7}",
      "t");
  EXPECT_EQ(CodeOf([&] { JsonIntOr(j, "big", 0, "t"); }), ErrorCode::kCorrupt);
  EXPECT_EQ(CodeOf([&] { JsonIntOr(j, "inf", 0, "t"); }), ErrorCode::kCorrupt);
  EXPECT_EQ(CodeOf([&] { JsonIntOr(j, "u", 0, "t"); }), ErrorCode::kCorrupt);
  EXPECT_EQ(CodeOf([&] { JsonIntOr(j, "half", 0, "t"); }), ErrorCode::kCorrupt);
  EXPECT_EQ(JsonIntOr(j, "two", 0, "t"), 2);
  EXPECT_EQ(JsonIntOr(j, "neg", 0, "t"), -7);
  EXPECT_EQ(JsonIntOr(j, "missing", 5, "t"), 5);
}

TEST(DType, ConvertsUnalignedAndEmptyData) {
  // Safetensors offsets need not be aligned to the element size.
  alignas(8) uint8_t buf[9] = {0, 0, 0, 0x80, 0x3f, 0, 0x40, 0, 0};
  float out[2] = {0, 0};
  ConvertToF32(DType::kBF16, buf + 3, out, 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  ConvertToF32(DType::kF32, nullptr, nullptr, 0);
}

}  // namespace
}  // namespace plm
