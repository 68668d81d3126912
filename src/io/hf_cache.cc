#include "io/hf_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "plm/error.h"

namespace plm {

namespace fs = std::filesystem;

namespace {

void MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIo, dir + ": cannot create folder: " + ec.message());
}

std::string Parent(const std::string& path) {
  return fs::path(path).parent_path().string();
}

// A name unique to this process for a file that is renamed into place afterwards.
std::string TempSibling(const std::string& path) {
  return path + "." + std::to_string(::getpid()) + ".tmp";
}

}  // namespace

bool IsCommitHash(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string NormalizeEtag(const std::string& header_value) {
  std::string e = header_value;
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  size_t b = 0, n = e.size();
  while (b < n && e[b] == '"') ++b;
  while (n > b && e[n - 1] == '"') --n;
  return e.substr(b, n - b);
}

std::string RepoFolderName(const std::string& repo_id) {
  std::string out = "models";
  std::stringstream ss(repo_id);
  std::string part;
  while (std::getline(ss, part, '/')) out += "--" + part;
  return out;
}

bool IsSafeRelativePath(const std::string& path) {
  if (path.empty() || path.size() > 1024) return false;
  for (unsigned char c : path)
    if (c < 0x20 || c == 0x7f || c == '\\') return false;
  std::stringstream ss(path);
  std::string part;
  size_t parts = 0;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
    ++parts;
  }
  return parts > 0 && path.back() != '/';
}

HfCacheRepo::HfCacheRepo(const std::string& cache_dir, const std::string& repo_id)
    : cache_dir_(cache_dir), folder_(RepoFolderName(repo_id)), dir_(cache_dir + "/" + folder_) {}

std::string HfCacheRepo::BlobPath(const std::string& etag) const {
  return dir_ + "/blobs/" + etag;
}

std::string HfCacheRepo::SnapshotDir(const std::string& commit) const {
  return dir_ + "/snapshots/" + commit;
}

std::string HfCacheRepo::PointerPath(const std::string& commit, const std::string& file) const {
  return SnapshotDir(commit) + "/" + file;
}

std::string HfCacheRepo::LockPath(const std::string& etag) const {
  return cache_dir_ + "/.locks/" + folder_ + "/" + etag + ".lock";
}

std::string HfCacheRepo::ReadRef(const std::string& revision) const {
  std::ifstream in(dir_ + "/refs/" + revision, std::ios::binary);
  if (!in) return "";
  std::string commit((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back())))
    commit.pop_back();
  // A ref names a snapshot folder: anything else is ignored rather than trusted as a path.
  if (commit.find('/') != std::string::npos || !IsSafeRelativePath(commit)) return "";
  return commit;
}

void HfCacheRepo::WriteRef(const std::string& revision, const std::string& commit) const {
  if (revision == commit || ReadRef(revision) == commit) return;
  const std::string path = dir_ + "/refs/" + revision;
  MakeDirs(Parent(path));
  const std::string tmp = TempSibling(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << commit;  // no newline, like huggingface_hub
    if (!out.flush()) throw Error(ErrorCode::kIo, tmp + ": cannot write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(ErrorCode::kIo, path + ": cannot write: " + why);
  }
}

bool HfCacheRepo::HasFile(const std::string& commit, const std::string& file) const {
  struct stat st;
  return ::stat(PointerPath(commit, file).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool HfCacheRepo::IsKnownMissing(const std::string& commit, const std::string& file) const {
  struct stat st;
  return ::lstat((dir_ + "/.no_exist/" + commit + "/" + file).c_str(), &st) == 0;
}

void HfCacheRepo::MarkMissing(const std::string& commit, const std::string& file) const {
  // Best effort, as in huggingface_hub: a read-only cache only costs a later network check.
  const std::string path = dir_ + "/.no_exist/" + commit + "/" + file;
  std::error_code ec;
  fs::create_directories(Parent(path), ec);
  if (ec) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
}

void HfCacheRepo::Link(const std::string& commit, const std::string& file,
                       const std::string& etag) const {
  const std::string pointer = PointerPath(commit, file);
  MakeDirs(Parent(pointer));
  // snapshots/{commit}/{a/b/file}: one ".." per folder level back to the repo folder.
  std::string target;
  const size_t depth = 2 + static_cast<size_t>(std::count(file.begin(), file.end(), '/'));
  for (size_t i = 0; i < depth; ++i) target += "../";
  target += "blobs/" + etag;
  const std::string tmp = TempSibling(pointer);
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0)
    throw Error(ErrorCode::kIo, pointer + ": cannot create symlink: " + std::strerror(errno));
  if (::rename(tmp.c_str(), pointer.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::kIo, pointer + ": cannot create symlink: " + why);
  }
}

HfCacheRepo::BlobLock::BlobLock(const std::string& path) {
  MakeDirs(Parent(path));
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(ErrorCode::kIo, path + ": cannot open lock file: " + std::strerror(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const std::string why = std::strerror(errno);
    ::close(fd_);
    throw Error(ErrorCode::kIo, path + ": cannot lock: " + why);
  }
}

HfCacheRepo::BlobLock::~BlobLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace plm
