// Helpers shared by the image/video preprocessing tests: fixture discovery and comparisons.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/image_processor.h"

namespace plm::test {

// Processor config for fixture processor `proc` (image_processor/PROC.json): the
// processor_config.json of models/PROC or processors/PROC when present, else inferred from the
// fixture itself (tile size from the shapes, smallest max_num_tiles reproducing every tile count).
// `source` says which. Returns false when nothing fits.
bool FindProcessorConfig(const std::string& fixtures, const std::string& proc, const Json& meta,
                         ImageProcessorConfig* config, std::string* source);

// pixel_values [tiles, 3, T, T] -> [..., ::stride, ::stride].
std::vector<float> Subsample(const std::vector<float>& pv, int64_t tiles, int tile, int stride);

// Per-tile, per-channel mean and unbiased std in double precision.
void TileChannelStats(const std::vector<float>& pv, int64_t tiles, int tile,
                      std::vector<double>* mean, std::vector<double>* std);

}  // namespace plm::test
