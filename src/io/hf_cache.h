// The Hugging Face hub cache on disk, laid out exactly as Python's huggingface_hub lays it out so
// that files fetched by either are reused by the other:
//
//   {cache}/models--{org}--{name}/refs/{revision}             commit hash of a branch or tag
//   {cache}/models--{org}--{name}/blobs/{etag}                file contents, named by ETag
//   {cache}/models--{org}--{name}/blobs/{etag}.incomplete     a download in progress (resumable)
//   {cache}/models--{org}--{name}/snapshots/{commit}/{file}   -> ../../blobs/{etag} (relative)
//   {cache}/models--{org}--{name}/.no_exist/{commit}/{file}   empty: the file is not in the repo
//   {cache}/.locks/models--{org}--{name}/{etag}.lock          flock held while writing a blob
#pragma once

#include <string>

namespace plm {

// True for a full 40-hex-digit git commit hash (lower case, as the Hub sends them).
bool IsCommitHash(const std::string& s);

// The ETag header value as a file name: W/ prefix and quotes removed (huggingface_hub's rule).
std::string NormalizeEtag(const std::string& header_value);

// "models--org--name" for "org/name".
std::string RepoFolderName(const std::string& repo_id);

// True when `path` is a relative path that stays inside its folder: '/'-separated, no empty,
// "." or ".." parts, no backslash or control characters. Repo file names and ETags coming from
// the network must pass this before they become paths.
bool IsSafeRelativePath(const std::string& path);

class HfCacheRepo {
 public:
  HfCacheRepo(const std::string& cache_dir, const std::string& repo_id);

  const std::string& cache_dir() const { return cache_dir_; }
  const std::string& dir() const { return dir_; }
  std::string BlobPath(const std::string& etag) const;
  std::string SnapshotDir(const std::string& commit) const;
  std::string PointerPath(const std::string& commit, const std::string& file) const;

  // The commit recorded in refs/{revision}, or "" when there is none.
  std::string ReadRef(const std::string& revision) const;
  // Records `commit` for `revision` (atomically, only when it changed); no-op for a commit hash.
  void WriteRef(const std::string& revision, const std::string& commit) const;

  // The snapshot has `file` and it resolves to a regular file.
  bool HasFile(const std::string& commit, const std::string& file) const;
  // A .no_exist marker says the repo has no `file` at `commit`.
  bool IsKnownMissing(const std::string& commit, const std::string& file) const;
  void MarkMissing(const std::string& commit, const std::string& file) const;
  // Points snapshots/{commit}/{file} at blobs/{etag} with a relative symlink, replacing any
  // previous entry atomically.
  void Link(const std::string& commit, const std::string& file, const std::string& etag) const;

  // An exclusive flock on .locks/{repo}/{etag}.lock, held until destroyed. huggingface_hub's
  // filelock uses flock on the same path, so Python and plm never write the same blob at once.
  class BlobLock {
   public:
    explicit BlobLock(const std::string& path);
    ~BlobLock();
    BlobLock(const BlobLock&) = delete;
    BlobLock& operator=(const BlobLock&) = delete;

   private:
    int fd_ = -1;
  };
  std::string LockPath(const std::string& etag) const;

 private:
  std::string cache_dir_;
  std::string folder_;  // models--org--name
  std::string dir_;     // cache_dir_/folder_
};

}  // namespace plm
