// FFmpeg prints decoder complaints to stderr; libplm reports problems as plm::Error instead.
#pragma once

namespace plm {

// Silences FFmpeg's logging for the process (once; later calls are no-ops). Set PLM_FFMPEG_LOG=1
// to keep FFmpeg's messages when debugging a file.
void QuietFfmpegLogs();

}  // namespace plm
