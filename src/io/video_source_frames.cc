// A folder of image files as a video: frames in file-name order, decoded one at a time.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "io/image_decode.h"
#include "io/random_access_frame_source.h"
#include "plm/error.h"

namespace plm {

namespace {

class FrameFolder : public RandomAccessFrameSource {
 public:
  FrameFolder(const std::string& dir, const DecodeLimits& limits, double fps)
      : RandomAccessFrameSource(dir), limits_(limits) {
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

  void ReadFrame(int64_t index, Image& frame) override {
    frame = LoadImageFile(files_[static_cast<size_t>(index)], limits_);
  }

 private:
  DecodeLimits limits_;
  std::vector<std::string> files_;
};

}  // namespace

std::unique_ptr<VideoFrameSource> OpenFrameFolder(const std::string& dir,
                                                  const DecodeLimits& limits, double fps) {
  return std::make_unique<FrameFolder>(dir, limits, fps);
}

}  // namespace plm
