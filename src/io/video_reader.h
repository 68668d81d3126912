// Video files through FFmpeg (libavformat / libavcodec / libswscale): mp4, mov, mkv, webm, avi,
// animated GIF and whatever else the installed FFmpeg demuxes and decodes.
//
// Frames are addressed by presentation index (0 = first frame). Only the requested frames are
// converted to RGB; long gaps are crossed by seeking to the keyframe before the target instead
// of decoding everything, and frames are handed out one at a time, so a 2-hour video never sits
// in memory. Index <-> timestamp uses the stream's frame rate (exact for constant-rate video).
// When the container does not store the frame count, the packets are counted once (demux only,
// no decoding). A codec the FFmpeg build lacks is reported as kUnsupported.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "io/video_source.h"

namespace plm {

std::unique_ptr<VideoFrameSource> OpenFfmpegVideo(const std::string& path,
                                                  const DecodeLimits& limits = {});
// The same for a video held in memory (uploads, fuzzing). `bytes` must outlive the source.
std::unique_ptr<VideoFrameSource> OpenFfmpegVideoMemory(std::span<const uint8_t> bytes,
                                                        const std::string& name,
                                                        const DecodeLimits& limits = {});

}  // namespace plm
