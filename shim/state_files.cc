#include "shim/state_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::shim {

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  std::string tmp = absl::StrCat(path, ".tmp");
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return ErrnoStatus(errno, "open(", tmp, ")");
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = write(fd.get(), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, "write(", tmp, ")");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  fd.Reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, "rename(", tmp, ", ", path, ")");
  }
  return absl::OkStatus();
}

absl::Status WriteMessageAtomically(const std::string& path,
                                    const google::protobuf::MessageLite& msg) {
  std::string bytes;
  if (!msg.SerializeToString(&bytes)) return absl::InternalError(absl::StrCat("serialize ", path));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read(", path, ")");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return absl::OutOfRangeError(absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
  }
  return out;
}

absl::Status ReadMessage(const std::string& path, google::protobuf::MessageLite& msg) {
  SKIFF_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  if (!msg.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(path, ": not a valid ", msg.GetTypeName()));
  }
  return absl::OkStatus();
}

}  // namespace skiff::shim
