// Test videos written with libavformat/libavcodec encoders (no ffmpeg binary needed). Frame i is
// flat grey, split in two halves whose levels encode i (left: i / 12, right: i % 12, 18 levels
// apart), so a decoded frame tells which frame it is even after lossy compression.
#pragma once

#include <cstdint>
#include <string>

#include "io/image.h"

namespace plm::test {

struct VideoSpec {
  std::string container;  // libavformat muxer name: "mp4", "matroska", "webm", "avi", "mov", "gif"
  std::string encoder;    // libavcodec encoder name: "libx264", "libvpx-vp9", "mpeg4", "gif", ...
  int width = 64;
  int height = 48;
  int frames = 24;
  int fps = 24;
  int gop = 12;
  int b_frames = 0;  // > 0: B-frames, so decode order differs from presentation order
};

// Writes the video to `path`; false (with `why`) when this FFmpeg lacks the encoder or muxer.
bool WriteTestVideo(const std::string& path, const VideoSpec& spec, std::string* why);

// The frame index a decoded frame shows (-1 when unreadable).
int64_t IdentifyFrame(const Image& frame);

}  // namespace plm::test
