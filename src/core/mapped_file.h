// Read-only memory mapping of a whole file (weights are used in place, never copied).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace plm {

class MappedFile {
 public:
  // Maps `path`; throws plm::Error (kNotFound / kIo) naming the file on failure.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Lets the kernel drop the whole pages inside [data, data + nbytes) once they are no longer read:
// pages of a read-only file mapping leave the resident set (a later read faults them back in from
// the file), pages of private anonymous memory are freed (a later read gives zeros).
void ReleasePages(const void* data, size_t nbytes);

// Reads a whole (small) file into a string; throws plm::Error naming the file on failure.
std::string ReadFileToString(const std::string& path);

// True when `path` exists and is a regular file / a directory (symlinks followed).
bool IsRegularFile(const std::string& path);
bool IsDirectory(const std::string& path);

}  // namespace plm
