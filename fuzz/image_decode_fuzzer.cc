// libFuzzer target for the image entry points: probe, decode (every format, EXIF, conversion)
// and a small preprocessing run. Any plm::Error is an accepted outcome; crashes, leaks,
// sanitizer reports, timeouts and out-of-memory are not.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/image_decode.h"
#include "io/image_processor.h"
#include "plm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  plm::DecodeLimits limits;
  limits.max_pixels = 1 << 22;  // keep single runs fast; the limit path itself is exercised
  limits.max_jpeg_scans = 200;
  const std::span<const uint8_t> bytes(data, size);
  try {
    const plm::ImageInfo info = plm::ProbeImage(bytes, "fuzz", limits);
    (void)info.oriented_width();
  } catch (const plm::Error&) {
  }
  try {
    plm::RgbOptions options;
    options.alpha =
        (size & 1) ? plm::AlphaHandling::kCompositeOverWhite : plm::AlphaHandling::kDrop;
    const plm::Image img = plm::DecodeImage(bytes, "fuzz", limits, options);
    plm::ImageProcessorConfig config;
    config.tile_size = 28;
    config.max_num_tiles = 4;
    const plm::ImageProcessor processor(config);
    plm::ImageOptions opt;
    opt.num_threads = 1;
    const plm::ProcessedImage out = processor.Preprocess(img, opt);
    if (out.pixel_values.size() != static_cast<size_t>(out.num_tiles) * 3 * 28 * 28)
      __builtin_trap();
  } catch (const plm::Error&) {
  }
  return 0;
}
