#include "sandbox/gen2/vmm/virtio_slots.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/devices/virtio/blk.h"
#include "sandbox/gen2/devices/virtio/console.h"
#include "sandbox/gen2/devices/virtio/net.h"
#include "sandbox/gen2/devices/virtio/tap.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2 {

using DeviceOr = absl::StatusOr<std::shared_ptr<virtio::VirtioDevice>>;

VirtioSlotConfig DiskSlot(uint32_t slot, const std::string& path, bool read_only,
                          const std::string& id) {
  return {slot, [path, read_only, id](EventLoop*, const GuestMemory&) -> DeviceOr {
            SKIFF_ASSIGN_OR_RETURN(std::shared_ptr<virtio::VirtioBlk> blk,
                                   virtio::VirtioBlk::Open(path, read_only, id));
            return std::shared_ptr<virtio::VirtioDevice>(std::move(blk));
          }};
}

VirtioSlotConfig NetSlot(const std::string& tap_name, const std::array<uint8_t, 6>& mac) {
  return {layout::kSlotNet, [tap_name, mac](EventLoop* loop, const GuestMemory&) -> DeviceOr {
            SKIFF_ASSIGN_OR_RETURN(UniqueFd tap, virtio::OpenTap(tap_name));
            SKIFF_ASSIGN_OR_RETURN(std::shared_ptr<virtio::VirtioNet> net,
                                   virtio::VirtioNet::Create(std::move(tap), mac, loop));
            return std::shared_ptr<virtio::VirtioDevice>(std::move(net));
          }};
}

VirtioSlotConfig ControlSlot(const std::string& socket_path) {
  return {layout::kSlotControl, [socket_path](EventLoop* loop, const GuestMemory&) -> DeviceOr {
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
              return absl::InvalidArgumentError(
                  absl::StrCat("control socket path ", socket_path, ": empty or too long"));
            }
            std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
            UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            if (!fd) return ErrnoStatus(errno, "socket(AF_UNIX, control channel)");
            if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
              return ErrnoStatus(errno, "connect(control socket ", socket_path, ")");
            }
            SKIFF_ASSIGN_OR_RETURN(
                std::shared_ptr<virtio::VirtioConsole> console,
                virtio::VirtioConsole::Create(std::move(fd), loop, /*on_host_eof=*/[] {}));
            return std::shared_ptr<virtio::VirtioDevice>(std::move(console));
          }};
}

absl::StatusOr<std::array<uint8_t, 6>> ParseMac(const std::string& text) {
  std::array<uint8_t, 6> mac{};
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("MAC address ", text, ": want xx:xx:xx:xx:xx:xx"));
  };
  if (text.size() != 17) return bad();
  for (size_t i = 0; i < 6; ++i) {
    if (i < 5 && text[i * 3 + 2] != ':') return bad();
    unsigned value = 0;
    for (size_t j = 0; j < 2; ++j) {
      const char c = text[i * 3 + j];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return bad();
      }
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

}  // namespace skiff::gen2
