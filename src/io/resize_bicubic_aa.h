// Antialiased bicubic resize of 8-bit interleaved images, bit-exact with the reference.
//
// Why a hand-written resize: PerceptionLM's processor (transformers 5.x on CPU, uint8 input)
// resizes with PyTorch's native fixed-point uint8 antialiased bicubic kernel. Its exact outputs
// depend on how the weights are quantised (a per-axis precision, int16 weights, rounding offset,
// arithmetic shift, uint8 clamp between the passes). No library we can link reproduces that: Pillow
// uses 22 fractional bits, libswscale/OpenCV/stb use other filters or no antialiasing, and the
// float path differs by up to ~28 levels. The rule is in ../shared/docs/plm-spec.md §2.5; this is
// an independent implementation of it (scalar reference + AVX2, threaded).
#pragma once

#include <cstdint>
#include <vector>

namespace plm {

// The quantised 1-D filter of one axis: output i reads `count[i]` inputs starting at `start[i]`,
// with int16 weights `weights[i * taps + k]` (zero beyond count[i]), scaled by 2^precision.
struct AAFilter {
  int in_size = 0;
  int out_size = 0;
  int taps = 0;       // max taps over all outputs (row stride of `weights`)
  int precision = 0;  // fixed-point fraction bits
  std::vector<int32_t> start;
  std::vector<int32_t> count;
  std::vector<int16_t> weights;
};

// Computes the filter for resizing an axis of `in_size` samples to `out_size` (both >= 1).
AAFilter ComputeAAFilter(int in_size, int out_size);

enum class ResizeImpl {
  kAuto,    // best available at run time (AVX2 when the CPU has it)
  kScalar,  // portable reference implementation
};

// Resizes `src` (height x width x channels, rows packed, uint8) to dst_w x dst_h into `dst`
// (dst_h x dst_w x channels, packed). Width pass first, then height; an axis whose size does not
// change is copied, exactly like the reference. `channels` is 1..4. `num_threads` <= 0 means one
// per hardware thread (capped). All implementations give identical bytes.
void ResizeBicubicAA(const uint8_t* src, int src_w, int src_h, int channels, uint8_t* dst,
                     int dst_w, int dst_h, int num_threads = 0,
                     ResizeImpl impl = ResizeImpl::kAuto);

// Number of worker threads `num_threads` resolves to (hardware concurrency when <= 0, capped).
int ResolveResizeThreads(int num_threads);

}  // namespace plm
