#include "core/dtype.h"

#include <cmath>

namespace plm {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
      return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF64:
      return "F64";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kI16:
      return "I16";
    case DType::kI8:
      return "I8";
    case DType::kU8:
      return "U8";
    case DType::kBool:
      return "BOOL";
  }
  return "?";
}

bool ParseDType(std::string_view s, DType* out) {
  static const struct {
    const char* name;
    DType t;
  } kTable[] = {{"F32", DType::kF32},  {"F16", DType::kF16}, {"BF16", DType::kBF16},
                {"F64", DType::kF64},  {"I64", DType::kI64}, {"I32", DType::kI32},
                {"I16", DType::kI16},  {"I8", DType::kI8},   {"U8", DType::kU8},
                {"BOOL", DType::kBool}};
  for (const auto& e : kTable) {
    if (s == e.name) {
      *out = e.t;
      return true;
    }
  }
  return false;
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

uint16_t F32ToF16(float f) {
  // IEEE half, round to nearest even (no _Float16: clang 14 lacks it on x86-64).
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow → inf
  if (ax < 0x38800000u) {                                               // subnormal or zero in half
    const float m = std::fabs(f) * 16777216.0f;  // 2^24: units of the smallest subnormal
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(m)));
  }
  uint32_t h = ((ax >> 13) - (112u << 10));
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

namespace {

// Converts n elements of type T; loads go through memcpy because safetensors data offsets need
// not be aligned to the element size.
template <typename T, typename F>
void ConvertEach(const void* src, float* dst, size_t n, F convert) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, bytes + i * sizeof(T), sizeof(T));
    dst[i] = convert(v);
  }
}

template <typename T>
void CastEach(const void* src, float* dst, size_t n) {
  ConvertEach<T>(src, dst, n, [](T v) { return static_cast<float>(v); });
}

}  // namespace

void ConvertToF32(DType t, const void* src, float* dst, size_t n) {
  if (n == 0) return;  // empty tensors may have null pointers
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16:
      return ConvertEach<uint16_t>(src, dst, n, Bf16ToF32);
    case DType::kF16:
      return ConvertEach<uint16_t>(src, dst, n, F16ToF32);
    case DType::kF64:
      return CastEach<double>(src, dst, n);
    case DType::kI64:
      return CastEach<int64_t>(src, dst, n);
    case DType::kI32:
      return CastEach<int32_t>(src, dst, n);
    case DType::kI16:
      return CastEach<int16_t>(src, dst, n);
    case DType::kI8:
      return CastEach<int8_t>(src, dst, n);
    case DType::kU8:
    case DType::kBool:
      return CastEach<uint8_t>(src, dst, n);
  }
}

}  // namespace plm
