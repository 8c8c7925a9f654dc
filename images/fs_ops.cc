#include "images/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::images {
namespace {

absl::Status RemoveChildren(int dirfd, const std::string& path) {
  int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus(errno, "fcntl(F_DUPFD, ", path, ")");
  DIR* dir = fdopendir(dup_fd);
  if (dir == nullptr) {
    UniqueFd owner(dup_fd);
    return ErrnoStatus(errno, "fdopendir(", path, ")");
  }
  std::vector<std::pair<std::string, bool>> entries;
  while (struct dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    entries.emplace_back(name, e->d_type == DT_DIR);
  }
  closedir(dir);  // owns dup_fd
  for (const auto& [name, is_dir] : entries) {
    std::string child = absl::StrCat(path, "/", name);
    if (unlinkat(dirfd, name.c_str(), 0) == 0) continue;
    if (errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) return ErrnoStatus(errno, "unlink(", child, ")");
    UniqueFd sub(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return ErrnoStatus(errno, "open(", child, ")");
    SKIFF_RETURN_IF_ERROR(RemoveChildren(sub.get(), child));
    if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "rmdir(", child, ")");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MakeDirs(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    cur = path.substr(0, next);
    pos = next;
    if (cur.empty() || cur == "/") continue;
    if (mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "mkdir(", cur, ")");
    }
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  if (unlink(path.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  SKIFF_RETURN_IF_ERROR(RemoveChildren(fd.get(), path));
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "rmdir(", path, ")");
  return absl::OkStatus();
}

absl::Status RemoveTreeAt(int dirfd, const std::string& name, const std::string& what) {
  if (unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus(errno, "unlink(", what, ")");
  UniqueFd fd(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", what, ")");
  SKIFF_RETURN_IF_ERROR(RemoveChildren(fd.get(), what));
  if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "rmdir(", what, ")");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileLimited(const std::string& path, size_t max_bytes) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read(", path, ")");
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

absl::Status SyncDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", dir, ")");
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync(", dir, ")");
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = absl::StrCat(path, ".tmp-", getpid());
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return ErrnoStatus(errno, "open(", tmp, ")");
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd.get(), data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        unlink(tmp.c_str());
        return ErrnoStatus(err, "write(", tmp, ")");
      }
      off += static_cast<size_t>(n);
    }
    if (fsync(fd.get()) != 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, "fsync(", tmp, ")");
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, "rename(", tmp, ", ", path, ")");
  }
  size_t slash = path.rfind('/');
  return SyncDir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

}  // namespace skiff::images
