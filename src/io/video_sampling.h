// Which frames of a video the reference feeds the model (plm-spec.md §3.1, sampling.json).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace plm {

// Per-request frame selection; neither set = every frame (the PerceptionLM default).
struct VideoSampling {
  std::optional<int64_t> num_frames;  // uniform: indices trunc(float32(i * total / N))
  std::optional<double> fps;          // N = int(total / video_fps * fps), then as num_frames
};

// Ascending frame indices, as transformers' BaseVideoProcessor.sample_frames picks them
// (torch.arange(0, total, total / N).int()). Where the reference refuses we do this instead:
//  * num_frames > total_frames (reference: ValueError): every frame, 0..total-1;
//  * fps giving N = 1 (reference: RuntimeError in a later permute) or N = 0 (reference:
//    ZeroDivisionError): frame 0 only;
//  * the float step giving one index more than N (e.g. 17 frames, N = 7: the reference returns 8
//    indices, the last = 17, past the end): exactly N indices, the reference's first N;
//  * do_sample_frames without num_frames/fps (reference: TypeError): every frame.
// Errors (kInvalidArgument): total_frames < 1, both num_frames and fps, num_frames < 1, fps <= 0,
// fps sampling without a known video fps.
std::vector<int64_t> SampleFrameIndices(int64_t total_frames, double video_fps,
                                        const VideoSampling& sampling);

}  // namespace plm
