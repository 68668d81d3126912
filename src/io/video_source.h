// A video as a sequence of RGB frames read by index: FFmpeg files, .npy arrays, frame folders.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "io/image.h"
#include "io/media_limits.h"

namespace plm {

struct VideoInfo {
  int64_t total_frames = 0;  // exact when the container says so or frames were counted
  double fps = 0;            // 0 when unknown (.npy, frame folders without a given rate)
  double duration_seconds = 0;
  int width = 0;  // of the first frame / the stream
  int height = 0;
  std::string codec;  // "h264", "vp9", "npy", "frames", ...
};

class VideoFrameSource {
 public:
  virtual ~VideoFrameSource() = default;
  virtual const VideoInfo& info() const = 0;
  // File name used in errors.
  virtual const std::string& name() const = 0;
  // Calls `fn(index, frame)` once per entry of `indices` (ascending, each < total_frames), in
  // order, decoding only what is needed; a frame is only valid during its call, so memory stays
  // bounded by one frame. Throws plm::Error naming the file.
  virtual void ReadFrames(std::span<const int64_t> indices,
                          const std::function<void(int64_t, const Image&)>& fn) = 0;
  // Frames the decoder produced during the last ReadFrames (seeking keeps this small); sources
  // that read frames directly report the frames read.
  virtual int64_t frames_decoded() const = 0;
};

// Opens `path`: a directory of image files (frames in name order, `folder_fps` as their rate), a
// .npy uint8 array [T, H, W, 3] (content-sniffed), or anything FFmpeg can demux and decode.
std::unique_ptr<VideoFrameSource> OpenVideo(const std::string& path,
                                            const DecodeLimits& limits = {}, double folder_fps = 0);

// uint8 [T, H, W, 3] .npy (C order); `fps` is reported as the rate (0 = unknown).
std::unique_ptr<VideoFrameSource> OpenNpyVideo(const std::string& path,
                                               const DecodeLimits& limits = {}, double fps = 0);
// The same for .npy bytes held by the caller (they must outlive the source).
std::unique_ptr<VideoFrameSource> OpenNpyVideoMemory(std::span<const uint8_t> bytes,
                                                     const std::string& name,
                                                     const DecodeLimits& limits = {},
                                                     double fps = 0);
// A video held in memory (an upload): .npy by content, else FFmpeg. `bytes` must outlive it.
std::unique_ptr<VideoFrameSource> OpenVideoMemory(std::span<const uint8_t> bytes,
                                                  const std::string& name,
                                                  const DecodeLimits& limits = {},
                                                  double npy_fps = 0);
// Image files of a folder (JPEG/PNG/WebP/GIF/BMP by content), sorted by name.
std::unique_ptr<VideoFrameSource> OpenFrameFolder(const std::string& dir,
                                                  const DecodeLimits& limits = {}, double fps = 0);

}  // namespace plm
