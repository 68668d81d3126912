// <immintrin.h> for the kernel files (per-function target attributes, core/cpu_features.h), with
// the warnings GCC 12's AVX-512 headers trip under -Werror switched off for the including file:
// -Wmaybe-uninitialized / -Wuninitialized through _mm512_undefined_*().
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>
