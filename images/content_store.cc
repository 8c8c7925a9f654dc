#include "images/content_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "images/digest.h"
#include "images/fs_ops.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::images {
namespace {

constexpr char kTempPrefix[] = ".tmp-";

// Writes into a temp file while hashing; refuses more bytes than the descriptor declares.
class HashingFileSink : public ByteSink {
 public:
  HashingFileSink(int fd, std::string path, std::string digest, int64_t limit)
      : fd_(fd), path_(std::move(path)), digest_(std::move(digest)), limit_(limit) {}

  absl::Status Restart() override {
    if (ftruncate(fd_, 0) != 0) return ErrnoStatus(errno, "ftruncate(", path_, ")");
    if (lseek(fd_, 0, SEEK_SET) != 0) return ErrnoStatus(errno, "lseek(", path_, ")");
    hash_ = Sha256();
    written_ = 0;
    return absl::OkStatus();
  }

  absl::Status Write(std::string_view data) override {
    if (limit_ >= 0 && written_ + static_cast<int64_t>(data.size()) > limit_) {
      return absl::DataLossError(
          absl::StrCat("blob ", digest_, ": more than the declared ", limit_, " bytes"));
    }
    hash_.Update(data);
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd_, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "write(", path_, ")");
      off += static_cast<size_t>(n);
    }
    written_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  int64_t written() const { return written_; }
  std::string Digest() { return hash_.Finish(); }

 private:
  int fd_;
  std::string path_;
  std::string digest_;
  int64_t limit_;
  Sha256 hash_;
  int64_t written_ = 0;
};

absl::StatusOr<std::pair<std::string, int64_t>> HashFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  Sha256 hash;
  int64_t total = 0;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read(", path, ")");
    if (n == 0) break;
    hash.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    total += n;
  }
  return std::make_pair(hash.Finish(), total);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(const std::string& root) {
  std::string dir = absl::StrCat(root, "/blobs/sha256");
  SKIFF_RETURN_IF_ERROR(MakeDirs(dir));
  // Temp files of a previous process are garbage.
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir(", dir, ")");
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    if (absl::StartsWith(e->d_name, kTempPrefix)) stale.push_back(e->d_name);
  }
  closedir(d);
  for (const auto& name : stale) unlink(absl::StrCat(dir, "/", name).c_str());
  return std::unique_ptr<ContentStore>(new ContentStore(dir));
}

std::string ContentStore::PathOf(const std::string& digest) const {
  return absl::StrCat(dir_, "/", DigestHex(digest));
}

std::string ContentStore::TempPath(const std::string& digest) {
  absl::MutexLock lock(&mu_);
  return absl::StrCat(dir_, "/", kTempPrefix, DigestHex(digest), "-", getpid(), "-",
                      ++temp_counter_);
}

bool ContentStore::Contains(const std::string& digest) {
  if (!ValidateDigest(digest).ok()) return false;
  struct stat st;
  return lstat(PathOf(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::Status ContentStore::VerifyFile(const std::string& digest, int64_t expected_size) {
  std::string path = PathOf(digest);
  struct stat before;
  if (lstat(path.c_str(), &before) != 0) return ErrnoStatus(errno, "stat(", path, ")");
  absl::Status bad;
  if (!S_ISREG(before.st_mode)) {
    bad = absl::DataLossError(absl::StrCat("blob ", digest, ": not a regular file"));
  } else if (expected_size >= 0 && before.st_size != expected_size) {
    bad = absl::DataLossError(absl::StrCat("blob ", digest, ": stored size ", before.st_size,
                                           " != expected ", expected_size));
  } else {
    SKIFF_ASSIGN_OR_RETURN(auto hashed, HashFile(path));
    if (hashed.first != digest) {
      bad = absl::DataLossError(
          absl::StrCat("blob ", digest, ": stored content hashes to ", hashed.first));
    }
  }
  if (!bad.ok()) unlink(path.c_str());
  return bad;
}

absl::Status ContentStore::Verify(const std::string& digest) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(digest));
  return VerifyFile(digest, -1);
}

absl::Status ContentStore::FetchOnce(const std::string& digest, int64_t size,
                                     const Fetcher& fetch) {
  std::string tmp = TempPath(digest);
  UniqueFd fd(open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) return ErrnoStatus(errno, "open(", tmp, ")");
  absl::Cleanup drop_tmp = [&tmp] { unlink(tmp.c_str()); };
  HashingFileSink sink(fd.get(), tmp, digest, size);
  SKIFF_RETURN_IF_ERROR(fetch(sink));
  if (size >= 0 && sink.written() != size) {
    return absl::DataLossError(
        absl::StrCat("blob ", digest, ": got ", sink.written(), " bytes, descriptor says ", size));
  }
  std::string got = sink.Digest();
  if (got != digest) {
    return absl::DataLossError(absl::StrCat("blob ", digest, ": content hashes to ", got));
  }
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync(", tmp, ")");
  std::string path = PathOf(digest);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename(", tmp, ", ", path, ")");
  }
  std::move(drop_tmp).Cancel();
  return SyncDir(dir_);
}

absl::Status ContentStore::EnsureLocked(const std::string& digest, int64_t size,
                                        const Fetcher& fetch, int max_fetches) {
  if (Contains(digest)) {
    absl::Status s = VerifyFile(digest, size);
    if (s.ok()) return s;
    if (s.code() != absl::StatusCode::kDataLoss) return s;
    // Corrupt cached copy: it was deleted; fetch a fresh one.
  }
  absl::Status last;
  for (int attempt = 0; attempt < std::max(1, max_fetches); ++attempt) {
    last = FetchOnce(digest, size, fetch);
    if (last.code() != absl::StatusCode::kDataLoss) return last;
  }
  return Annotate(last, absl::StrCat("after ", std::max(1, max_fetches), " fetches"));
}

absl::StatusOr<std::string> ContentStore::Ensure(const std::string& digest, int64_t size,
                                                 const Fetcher& fetch, int max_fetches) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(digest));
  std::shared_ptr<InFlight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(digest);
    if (it == in_flight_.end()) {
      flight = std::make_shared<InFlight>();
      in_flight_[digest] = flight;
      leader = true;
    } else {
      flight = it->second;
      mu_.Await(absl::Condition(
          +[](InFlight* f) { return f->done; }, flight.get()));
    }
  }
  if (!leader) {
    if (!flight->status.ok()) return flight->status;
    return PathOf(digest);
  }
  absl::Status s = EnsureLocked(digest, size, fetch, max_fetches);
  {
    absl::MutexLock lock(&mu_);
    flight->status = s;
    flight->done = true;
    in_flight_.erase(digest);
  }
  if (!s.ok()) return s;
  return PathOf(digest);
}

absl::Status ContentStore::Put(const std::string& digest, std::string_view data) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(digest));
  auto path = Ensure(
      digest, static_cast<int64_t>(data.size()),
      [&](ByteSink& sink) {
        SKIFF_RETURN_IF_ERROR(sink.Restart());
        return sink.Write(data);
      },
      1);
  return path.status();
}

absl::StatusOr<std::string> ContentStore::Read(const std::string& digest, size_t max_bytes) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = PathOf(digest);
  SKIFF_ASSIGN_OR_RETURN(std::string out, ReadFileLimited(path, max_bytes));
  if (Sha256Digest(out) != digest) {
    unlink(path.c_str());
    return absl::DataLossError(absl::StrCat("blob ", digest, ": stored content is corrupt"));
  }
  return out;
}

absl::Status ContentStore::Remove(const std::string& digest) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = PathOf(digest);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink(", path, ")");
  return absl::OkStatus();
}

}  // namespace skiff::images
