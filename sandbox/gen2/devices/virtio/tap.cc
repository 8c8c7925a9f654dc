#include "sandbox/gen2/devices/virtio/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"

namespace skiff::gen2::virtio {

absl::StatusOr<UniqueFd> OpenTap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("tap name \"", name, "\": must be 1 to ", IFNAMSIZ - 1, " bytes"));
  }
  UniqueFd fd(open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(/dev/net/tun)");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    return ErrnoStatus(errno, "ioctl(TUNSETIFF, tap ", name, ")");
  }
  return fd;
}

}  // namespace skiff::gen2::virtio
