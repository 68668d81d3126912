// OpenVideo / OpenVideoMemory: pick the frame source for a path (folder, .npy, or FFmpeg) by
// looking at it.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "io/video_reader.h"
#include "io/video_source.h"
#include "plm/error.h"

namespace plm {

std::unique_ptr<VideoFrameSource> OpenVideo(const std::string& path, const DecodeLimits& limits,
                                            double folder_fps) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error(ErrorCode::kNotFound, path + ": no such file");
  if (S_ISDIR(st.st_mode)) return OpenFrameFolder(path, limits, folder_fps);
  if (st.st_size == 0) throw Error(ErrorCode::kInvalidArgument, path + ": empty file");
  char magic[6] = {0};
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  const size_t n = std::fread(magic, 1, sizeof(magic), f.get());
  if (n == sizeof(magic) && std::memcmp(magic, "\x93NUMPY", 6) == 0) {
    return OpenNpyVideo(path, limits, folder_fps);
  }
  return OpenFfmpegVideo(path, limits);
}

std::unique_ptr<VideoFrameSource> OpenVideoMemory(std::span<const uint8_t> bytes,
                                                  const std::string& name,
                                                  const DecodeLimits& limits, double npy_fps) {
  if (bytes.empty()) throw Error(ErrorCode::kInvalidArgument, name + ": empty file");
  if (bytes.size() >= 6 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0) {
    return OpenNpyVideoMemory(bytes, name, limits, npy_fps);
  }
  return OpenFfmpegVideoMemory(bytes, name, limits);
}

}  // namespace plm
