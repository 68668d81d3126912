// A whole file in memory, read-only: mapped in place, or (copy_to_huge_pages) read into memory
// backed by transparent huge pages (plm/huge_page_allocator.h) — for the weights, which decode
// streams every token; files under 2 MiB are always mapped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace plm {

class MappedFile {
 public:
  // Maps (or copies) `path`; throws plm::Error (kNotFound / kIo) naming the file on failure.
  explicit MappedFile(const std::string& path, bool copy_to_huge_pages = false);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // True when the contents were copied (copy_to_huge_pages and at least 2 MiB).
  bool copied() const { return copied_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool copied_ = false;
};

// Reads a whole (small) file into a string; throws plm::Error naming the file on failure.
std::string ReadFileToString(const std::string& path);

// True when `path` exists and is a regular file / a directory (symlinks followed).
bool IsRegularFile(const std::string& path);
bool IsDirectory(const std::string& path);

}  // namespace plm
