// Image preprocessing speed: a synthetic 12-megapixel photo (4000x3000) through the real
// PerceptionLM-1B/3B processor config (plm-448x36: 448 tiles, up to 36 + thumbnail), and the
// resize kernel alone. Results: docs/PERFORMANCE.md.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "io/image_processor.h"
#include "io/resize_bicubic_aa.h"

namespace {

plm::Image Photo(int w, int h) {
  plm::Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  uint32_t state = 12345;
  for (size_t i = 0; i < img.rgb.size(); ++i) {
    // Smooth content plus a little noise, like a photo.
    state = state * 1664525u + 1013904223u;
    const size_t px = i / 3;
    const int x = static_cast<int>(px % w), y = static_cast<int>(px / w);
    img.rgb[i] = static_cast<uint8_t>(
        (x / 16 + y / 12 + static_cast<int>(i % 3) * 40 + static_cast<int>(state >> 29)) & 0xFF);
  }
  return img;
}

plm::ImageProcessorConfig Config() {
  const char* fixtures = std::getenv("PLM_FIXTURES");
  const std::string dir =
      std::string(fixtures != nullptr && *fixtures ? fixtures : PLM_FIXTURES_DEFAULT) +
      "/processors/plm-448x36";
  try {
    return plm::ImageProcessorConfig::Load(dir);
  } catch (const std::exception&) {
    return plm::ImageProcessorConfig();  // the same values: tile 448, 36 tiles
  }
}

void BM_Preprocess12MP(benchmark::State& state) {
  const plm::Image img = Photo(4000, 3000);
  const plm::ImageProcessor proc(Config());
  plm::ImageOptions opt;
  opt.num_threads = static_cast<int>(state.range(0));
  int64_t tiles = 0;
  for (auto _ : state) {
    const plm::ProcessedImage out = proc.Preprocess(img, opt);
    tiles = out.num_tiles;
    benchmark::DoNotOptimize(out.pixel_values.data());
  }
  state.counters["tiles"] = static_cast<double>(tiles);
}
BENCHMARK(BM_Preprocess12MP)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The 12 MP photo forced into the full 6x6 canvas (2688x2688, 36 tiles + thumbnail).
void BM_Resize12MPTo36Tiles(benchmark::State& state) {
  const plm::Image img = Photo(4000, 3000);
  std::vector<uint8_t> canvas(2688 * 2688 * 3), thumb(448 * 448 * 3);
  const int threads = static_cast<int>(state.range(0));
  const auto impl = state.range(1) ? plm::ResizeImpl::kAuto : plm::ResizeImpl::kScalar;
  for (auto _ : state) {
    plm::ResizeBicubicAA(img.rgb.data(), 4000, 3000, 3, canvas.data(), 2688, 2688, threads, impl);
    plm::ResizeBicubicAA(img.rgb.data(), 4000, 3000, 3, thumb.data(), 448, 448, threads, impl);
    benchmark::DoNotOptimize(canvas.data());
  }
}
BENCHMARK(BM_Resize12MPTo36Tiles)
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A video frame (160x120 -> 448x448), the per-frame cost of video preprocessing.
void BM_VideoFrame(benchmark::State& state) {
  const plm::Image img = Photo(160, 120);
  std::vector<uint8_t> out(448 * 448 * 3);
  for (auto _ : state) {
    plm::ResizeBicubicAA(img.rgb.data(), 160, 120, 3, out.data(), 448, 448, 1);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_VideoFrame)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
