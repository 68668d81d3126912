// .npy video arrays (the fixtures' format): uint8 [T, H, W, 3], C order, memory-mapped.
#include <cstring>
#include <memory>
#include <regex>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "io/random_access_frame_source.h"
#include "plm/error.h"

namespace plm {

namespace {

class NpyVideo : public RandomAccessFrameSource {
 public:
  // From a file (memory-mapped) or from bytes the caller keeps alive.
  NpyVideo(const std::string& path, const DecodeLimits& limits, double fps)
      : RandomAccessFrameSource(path),
        file_(std::make_unique<MappedFile>(path)),
        bytes_(file_->data(), file_->size()) {
    Parse(limits, fps);
  }
  NpyVideo(std::span<const uint8_t> bytes, const std::string& name, const DecodeLimits& limits,
           double fps)
      : RandomAccessFrameSource(name), bytes_(bytes) {
    Parse(limits, fps);
  }

  void Parse(const DecodeLimits& limits, double fps) {
    const uint8_t* p = bytes_.data();
    const size_t size = bytes_.size();
    if (size < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) Corrupt("not a .npy file");
    const int major = p[6];
    size_t header_len, offset;
    if (major == 1) {
      header_len = p[8] | (p[9] << 8);
      offset = 10;
    } else if (major == 2 || major == 3) {
      if (size < 12) Corrupt("truncated header");
      header_len = static_cast<size_t>(p[8]) | (static_cast<size_t>(p[9]) << 8) |
                   (static_cast<size_t>(p[10]) << 16) | (static_cast<size_t>(p[11]) << 24);
      offset = 12;
    } else {
      throw Error(ErrorCode::kUnsupported, name_ + ": .npy version " + std::to_string(major));
    }
    if (header_len > size - offset || header_len > 65536) Corrupt("truncated header");
    const std::string header(reinterpret_cast<const char*>(p + offset), header_len);
    data_offset_ = offset + header_len;
    std::smatch m;
    if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'"))) {
      Corrupt("header has no descr");
    }
    const std::string descr = m[1];
    if (descr != "|u1" && descr != "<u1" && descr != "u1" && descr != ">u1") {
      throw Error(ErrorCode::kUnsupported,
                  name_ + ": .npy dtype " + descr + " (uint8 frames expected)");
    }
    if (std::regex_search(header, std::regex("'fortran_order'\\s*:\\s*True"))) {
      throw Error(ErrorCode::kUnsupported, name_ + ": Fortran-order .npy arrays");
    }
    if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)"))) {
      Corrupt("header has no shape");
    }
    std::vector<int64_t> shape;
    const std::string dims = m[1];
    for (size_t i = 0; i < dims.size();) {
      if (dims[i] < '0' || dims[i] > '9') {
        ++i;
        continue;
      }
      int64_t d = 0;
      for (; i < dims.size() && dims[i] >= '0' && dims[i] <= '9'; ++i) {
        if (d > (int64_t{1} << 40)) Corrupt("dimension too large");
        d = d * 10 + (dims[i] - '0');
      }
      shape.push_back(d);
    }
    if (shape.size() != 4 || shape[3] != 3) {
      throw Error(ErrorCode::kUnsupported,
                  name_ + ": .npy video must be [frames, height, width, 3], got " +
                      std::to_string(shape.size()) + " dimensions");
    }
    if (shape[0] < 1 || shape[1] < 1 || shape[2] < 1) Corrupt("zero-sized array");
    if (shape[1] * shape[2] > limits.max_pixels || shape[1] > limits.max_pixels ||
        shape[2] > limits.max_pixels) {
      throw Error(ErrorCode::kLimit, name_ + ": frames of " + std::to_string(shape[2]) + "x" +
                                         std::to_string(shape[1]) + " exceed the pixel limit");
    }
    frame_bytes_ = static_cast<size_t>(shape[1] * shape[2] * 3);
    if (shape[0] > static_cast<int64_t>((size - data_offset_) / frame_bytes_)) {
      Corrupt("data is shorter than the shape says (truncated)");
    }
    info_.total_frames = shape[0];
    info_.height = static_cast<int>(shape[1]);
    info_.width = static_cast<int>(shape[2]);
    info_.fps = fps;
    info_.duration_seconds = fps > 0 ? static_cast<double>(shape[0]) / fps : 0;
    info_.codec = "npy";
  }

  void ReadFrame(int64_t index, Image& frame) override {
    const uint8_t* src = bytes_.data() + data_offset_ + frame_bytes_ * static_cast<size_t>(index);
    frame.width = info_.width;
    frame.height = info_.height;
    frame.rgb.assign(src, src + frame_bytes_);
  }

 private:
  [[noreturn]] void Corrupt(const std::string& what) const {
    throw Error(ErrorCode::kCorrupt, name_ + ": bad .npy: " + what);
  }

  std::unique_ptr<MappedFile> file_;
  std::span<const uint8_t> bytes_;
  size_t data_offset_ = 0;
  size_t frame_bytes_ = 0;
};

}  // namespace

std::unique_ptr<VideoFrameSource> OpenNpyVideo(const std::string& path, const DecodeLimits& limits,
                                               double fps) {
  return std::make_unique<NpyVideo>(path, limits, fps);
}

std::unique_ptr<VideoFrameSource> OpenNpyVideoMemory(std::span<const uint8_t> bytes,
                                                     const std::string& name,
                                                     const DecodeLimits& limits, double fps) {
  return std::make_unique<NpyVideo>(bytes, name, limits, fps);
}

}  // namespace plm
