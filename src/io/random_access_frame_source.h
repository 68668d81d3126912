// Videos whose frames are read directly by index (.npy arrays, frame folders): the bookkeeping
// they share. Subclasses fill `info_` and read one frame at a time.
#pragma once

#include <string>
#include <utility>

#include "io/video_source.h"
#include "plm/error.h"

namespace plm {

class RandomAccessFrameSource : public VideoFrameSource {
 public:
  explicit RandomAccessFrameSource(std::string name) : name_(std::move(name)) {}

  const VideoInfo& info() const override { return info_; }
  const std::string& name() const override { return name_; }
  int64_t frames_decoded() const override { return frames_decoded_; }

  void ReadFrames(std::span<const int64_t> indices,
                  const std::function<void(int64_t, const Image&)>& fn) override {
    frames_decoded_ = 0;
    Image frame;
    for (int64_t i : indices) {
      if (i < 0 || i >= info_.total_frames)
        throw Error(ErrorCode::kInvalidArgument,
                    name_ + ": frame " + std::to_string(i) + " is out of range");
      ReadFrame(i, frame);
      ++frames_decoded_;
      fn(i, frame);
    }
  }

 protected:
  // Reads frame `index` (in range) into `frame`, which may hold the previous frame.
  virtual void ReadFrame(int64_t index, Image& frame) = 0;

  std::string name_;
  VideoInfo info_;

 private:
  int64_t frames_decoded_ = 0;
};

}  // namespace plm
