#pragma once

// VirtioSlotConfigs for the devices skiff attaches, by the host resource behind them:
//   a disk image file (virtio-blk; the root image read-only at layout::kSlotBlock, a
//     writable scratch disk at layout::kSlotScratch),
//   a tap interface (virtio-net at layout::kSlotNet),
//   the control channel: a Unix stream socket path the VMM connects to (virtio-console at
//     layout::kSlotControl; whoever runs the VMM listens there first).
// The host resource is opened when Vmm::Create builds the device, so its errors come out of
// Create naming the slot and the path.

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "sandbox/gen2/vmm/vmm.h"

namespace skiff::gen2 {

VirtioSlotConfig DiskSlot(uint32_t slot, const std::string& path, bool read_only,
                          const std::string& id);
VirtioSlotConfig NetSlot(const std::string& tap_name, const std::array<uint8_t, 6>& mac);
VirtioSlotConfig ControlSlot(const std::string& socket_path);

// "52:54:00:12:34:56" → bytes. INVALID_ARGUMENT unless six two-digit hex groups with ':'.
absl::StatusOr<std::array<uint8_t, 6>> ParseMac(const std::string& text);

}  // namespace skiff::gen2
