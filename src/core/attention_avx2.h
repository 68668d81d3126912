// Attention over a bf16 KV cache for CPUs with AVX2, FMA and F16C but without the AVX-512
// kernels (most desktop and laptop CPUs): decode steps, and prefill on the cache.
#pragma once

#include "core/attention.h"

namespace plm {

// FusedAttention for one head (a.heads == 1) of keys in the cache's 32-position tiles (a.k16)
// and values in rows (a.v16): scores, softmax and P·V in f32 on keys and values widened in
// registers (exact: bf16 values are f32 values), 4 query rows sharing each key and value load.
// Causal offsets, the padding mask, rows with no visible key (uniform over every key) and
// a.lse as the AVX-512 decode kernel. a.hd % 16 == 0, a.hd <= 256.
void FusedAttentionKV16Avx2(const AttentionArgs& a);

}  // namespace plm
