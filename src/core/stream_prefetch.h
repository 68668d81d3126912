// How far ahead the decode GEMVs ask for their weight streams in L2, per CPU vendor.
#pragma once

#include <cstdint>

namespace plm {

// Bytes ahead of the current read at which the blocked decode GEMVs (q4, q8, bf16) issue an L2
// software prefetch (PREFETCHT1), besides their L1 prefetch a few KB ahead; 0: none.
// Intel (measured on a 2-core Xeon VM, family 6 model 207): per core the L2 streamer alone kept a
// 144 MiB q4 GEMV at ~0.83 of the read probe, with an L2 prefetch 16-32 KB ahead ~0.93 (q8 0.92
// -> 0.97, bf16 0.84 -> 0.95). Decode attention did not move with it there (bound by its
// vdpbf16ps rate), so it has none. AMD (Zen 4, where the L1 distances were tuned) keeps 0: not
// measured there. PLM_L2_PREFETCH (bytes, 0 disables) overrides it, for A/B measurements.
int64_t StreamL2AheadBytes();
// Tests only: replaces the distance (results must not depend on it).
void SetStreamL2AheadBytesForTesting(int64_t bytes);

}  // namespace plm
