#include "agent/ingress/cpu_latency.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"

namespace skiff::ingress {

absl::StatusOr<CpuLatencyRequest> CpuLatencyRequest::Hold(int32_t max_us, const std::string& path) {
  if (max_us < 0 || max_us > kMaxUs) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu latency qos: ", max_us, " us is not in 0..", kMaxUs));
  }
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "cpu latency qos: open(", path, ")");
  // The device takes a binary s32 (or hex text); a short write would be a kernel contract
  // break, but it is checked like any other.
  const ssize_t n = write(fd.get(), &max_us, sizeof(max_us));
  if (n < 0) return ErrnoStatus(errno, "cpu latency qos: write(", path, ")");
  if (n != sizeof(max_us)) {
    return absl::InternalError(
        absl::StrCat("cpu latency qos: write(", path, "): ", n, " of ", sizeof(max_us), " bytes"));
  }
  return CpuLatencyRequest(std::move(fd), max_us);
}

absl::StatusOr<int32_t> CpuLatencyRequest::Current(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "cpu latency qos: open(", path, ")");
  int32_t v = 0;
  const ssize_t n = read(fd.get(), &v, sizeof(v));
  if (n < 0) return ErrnoStatus(errno, "cpu latency qos: read(", path, ")");
  if (n != sizeof(v)) {
    return absl::InternalError(
        absl::StrCat("cpu latency qos: read(", path, "): ", n, " of ", sizeof(v), " bytes"));
  }
  return v;
}

std::string CpuLatencyRequest::IdleDriver() {
  auto driver = ReadFileToString("/sys/devices/system/cpu/cpuidle/current_driver", 256);
  if (!driver.ok()) return "none";
  std::string name(absl::StripAsciiWhitespace(*driver));
  return name.empty() ? "none" : name;
}

}  // namespace skiff::ingress
