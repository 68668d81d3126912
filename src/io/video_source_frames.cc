// A folder of image files as a video: frames in file-name order, decoded one at a time.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "io/image_decode.h"
#include "io/video_source.h"
#include "plm/error.h"

namespace plm {

namespace {

class FrameFolder : public VideoFrameSource {
 public:
  FrameFolder(const std::string& dir, const DecodeLimits& limits, double fps)
      : name_(dir), limits_(limits) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (!e.is_regular_file()) continue;
      const std::string f = e.path().filename().string();
      if (!f.empty() && f[0] == '.') continue;  // hidden files
      files_.push_back(e.path().string());
    }
    if (ec) throw Error(ErrorCode::kIo, dir + ": cannot list: " + ec.message());
    std::sort(files_.begin(), files_.end());
    if (files_.empty()) throw Error(ErrorCode::kInvalidArgument, dir + ": no frame files");
    const ImageInfo first = ProbeImageFile(files_[0], limits_);
    info_.total_frames = static_cast<int64_t>(files_.size());
    info_.width = first.oriented_width();
    info_.height = first.oriented_height();
    info_.fps = fps;
    info_.duration_seconds = fps > 0 ? static_cast<double>(files_.size()) / fps : 0;
    info_.codec = "frames";
  }

  const VideoInfo& info() const override { return info_; }
  const std::string& name() const override { return name_; }
  int64_t frames_decoded() const override { return frames_decoded_; }

  void ReadFrames(std::span<const int64_t> indices,
                  const std::function<void(int64_t, const Image&)>& fn) override {
    frames_decoded_ = 0;
    for (int64_t i : indices) {
      if (i < 0 || i >= info_.total_frames) {
        throw Error(ErrorCode::kInvalidArgument,
                    name_ + ": frame " + std::to_string(i) + " is out of range");
      }
      ++frames_decoded_;
      fn(i, LoadImageFile(files_[static_cast<size_t>(i)], limits_));
    }
  }

 private:
  std::string name_;
  DecodeLimits limits_;
  std::vector<std::string> files_;
  VideoInfo info_;
  int64_t frames_decoded_ = 0;
};

}  // namespace

std::unique_ptr<VideoFrameSource> OpenFrameFolder(const std::string& dir,
                                                  const DecodeLimits& limits, double fps) {
  return std::make_unique<FrameFolder>(dir, limits, fps);
}

}  // namespace plm
