#include "agent/instances/state_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::agent {
namespace {

constexpr size_t kMaxProtoFileBytes = 16 << 20;

absl::Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "write(", path, ")");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Removes the entries of the directory open at `dir_fd` (on device `dev`), recursively.
absl::Status RemoveContents(int dir_fd, dev_t dev, const std::string& path) {
  UniqueFd dup_fd(fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (!dup_fd) return ErrnoStatus(errno, "dup(", path, ")");
  DIR* d = fdopendir(dup_fd.get());
  if (d == nullptr) return ErrnoStatus(errno, "fdopendir(", path, ")");
  dup_fd.Release();  // owned by the DIR now; closedir() closes it
  std::vector<std::pair<std::string, bool>> entries;
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    entries.emplace_back(name, e->d_type == DT_DIR);
  }
  closedir(d);
  for (const auto& [name, maybe_dir] : entries) {
    const std::string child = absl::StrCat(path, "/", name);
    struct stat st;
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, "stat(", child, ")");
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        return absl::FailedPreconditionError(
            absl::StrCat("remove(", child, "): a mount point; refusing to cross it"));
      }
      UniqueFd sub(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return ErrnoStatus(errno, "open(", child, ")");
      SKIFF_RETURN_IF_ERROR(RemoveContents(sub.get(), dev, child));
      if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return ErrnoStatus(errno, "rmdir(", child, ")");
      }
    } else if (unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "unlink(", child, ")");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteProtoFile(const std::string& path, const google::protobuf::MessageLite& message) {
  std::string data;
  if (!message.SerializeToString(&data)) {
    return absl::InternalError(absl::StrCat("serialize(", path, ")"));
  }
  const std::string tmp = absl::StrCat(path, ".tmp");
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return ErrnoStatus(errno, "open(", tmp, ")");
  absl::Status st = WriteAll(fd.get(), data, tmp);
  if (st.ok() && fsync(fd.get()) != 0) st = ErrnoStatus(errno, "fsync(", tmp, ")");
  fd.Reset();
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoStatus(errno, "rename(", tmp, ", ", path, ")");
  }
  if (!st.ok()) unlink(tmp.c_str());
  return st;
}

absl::Status ReadProtoFile(const std::string& path, google::protobuf::MessageLite* message) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  std::string data;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read(", path, ")");
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxProtoFileBytes) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": larger than 16 MiB"));
    }
  }
  if (!message->ParseFromString(data)) {
    return absl::DataLossError(
        absl::StrCat("parse(", path, "): not a valid ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

absl::Status RemoveStateDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "open(", dir, ")");
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat(", dir, ")");
  SKIFF_RETURN_IF_ERROR(RemoveContents(fd.get(), st.st_dev, dir));
  fd.Reset();
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "rmdir(", dir, ")");
  return absl::OkStatus();
}

}  // namespace skiff::agent
