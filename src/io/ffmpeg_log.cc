#include "io/ffmpeg_log.h"

#include <cstdlib>
#include <mutex>

extern "C" {
#include <libavutil/log.h>
}

namespace plm {

void QuietFfmpegLogs() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* keep = std::getenv("PLM_FFMPEG_LOG");
    if (keep == nullptr || *keep == '\0' || *keep == '0') av_log_set_level(AV_LOG_QUIET);
  });
}

}  // namespace plm
