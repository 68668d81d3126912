#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "plm/error.h"
#include "plm/huge_page_allocator.h"

namespace plm {

MappedFile::MappedFile(const std::string& path, bool copy_to_huge_pages) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                path + ": cannot open: " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(ErrorCode::kIo, path + ": cannot stat: " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::kIo, path + ": is a directory, expected a file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (copy_to_huge_pages && size_ >= kHugePageBytes) {
    auto* buf = static_cast<uint8_t*>(AllocateLarge(size_));
    size_t got = 0;
    while (got < size_) {
      const ssize_t r = ::pread(fd, buf + got, size_ - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        const int err = r < 0 ? errno : 0;
        FreeLarge(buf, size_);
        ::close(fd);
        throw Error(ErrorCode::kIo, path + ": read failed after " + std::to_string(got) + " of " +
                                        std::to_string(size_) + " bytes" +
                                        (err != 0 ? std::string(": ") + std::strerror(err) : ""));
      }
      got += static_cast<size_t>(r);
    }
    ::close(fd);
    data_ = buf;
    copied_ = true;
    return;
  }
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorCode::kIo, path + ": cannot map: " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (copied_) {
    FreeLarge(const_cast<uint8_t*>(data_), size_);
  } else if (data_ != nullptr) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
}

std::string ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    struct stat st;
    const bool exists = ::stat(path.c_str(), &st) == 0;
    throw Error(exists ? ErrorCode::kIo : ErrorCode::kNotFound,
                path + (exists ? ": cannot read" : ": no such file"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, path + ": read failed");
  return ss.str();
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace plm
