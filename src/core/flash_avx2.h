// Many-query attention (vision tiles: 1025 queries x 1025 keys per head) for CPUs with AVX2, FMA
// and F16C but without the AVX-512 kernels, on the reduced-precision paths: flash-style (key blocks
// with an online softmax, no full score rows) in f32 FMAs on keys packed once per call as 8-key
// tiles [hd][8], 4 query rows sharing each key and value load. Replaces the portable kernel there
// (half of a q8 vision tile's time on a Zen 2 once the GEMMs ran on oneDNN, docs/PERFORMANCE.md,
// session 22).
#pragma once

#include "core/attention.h"

namespace plm {

// Whether FusedAttention takes FusedAttentionFlashAvx2 for these arguments: a.bf16 (a reduced
// path), f32 keys and values (a.k, a.v; not a bf16 cache), a.hd % 16 == 0 and <= 256, at least 4
// query rows, no a.lse, and a CPU whose kernel set is AVX2 (CpuFeatures::avx2_kernels).
bool UsesAvx2ManyQueryKernel(const AttentionArgs& a);

// FusedAttention for such arguments (every AttentionArgs option it allows: causal offsets, the
// padding mask, rows with no visible key attending uniformly to all keys, grouped heads).
void FusedAttentionFlashAvx2(const AttentionArgs& a);

}  // namespace plm
