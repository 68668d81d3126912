// libFuzzer target for the safetensors reader: header length, JSON header, dtypes, shapes and
// offsets of arbitrary bytes. plm::Error is an accepted outcome; crashes, sanitizer reports,
// reads outside the mapping, timeouts and out-of-memory are not.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/safetensors.h"
#include "plm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader maps a path; an in-memory file keeps the fuzzer off the disk.
  static const int fd = memfd_create("safetensors_fuzz", 0);
  if (fd < 0) __builtin_trap();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    __builtin_trap();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    plm::SafetensorsFile file(path);
    for (const auto& [name, t] : file.tensors()) {
      // Every validated tensor lies inside the file: touching all of its bytes must be safe.
      if (t.nbytes > size) __builtin_trap();
      if (t.numel() <= (1 << 16)) {
        try {
          (void)t.ToF32();
        } catch (const plm::Error&) {
        }
        try {
          (void)t.ToI64();
        } catch (const plm::Error&) {
        }
      }
      (void)t.ShapeString();
    }
    (void)file.metadata();
  } catch (const plm::Error&) {
  }
  return 0;
}
