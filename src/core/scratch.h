// Per-thread scratch buffers reused by calls of different sizes.
#pragma once

#include <cstddef>
#include <vector>

namespace plm {

// v.data() with room for at least n elements. v only grows: a buffer resized down for a small
// call and up again for the next large one would be value-initialised (a memset of the grown part)
// each time — 1.9 % of a q8 vision tile went there. The contents are unspecified.
template <typename T>
T* GrowScratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace plm
