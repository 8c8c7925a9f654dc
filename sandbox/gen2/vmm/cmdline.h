#pragma once

// The kernel command line the VMM writes at layout::kCmdlineAddr: the caller's line, then
// one `virtio_mmio.device=<size>@<addr>:<irq>` per attached virtio-mmio slot (Linux's
// virtio_mmio driver creates the devices from these; the test guest parses the same
// syntax). The one place that spells that syntax.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace skiff::gen2 {

// "virtio_mmio.device=4K@0xd0000000:5" for slot 0 with the layout's numbers.
std::string VirtioMmioDeviceArg(uint32_t slot);

// `base` + the device arguments for `slots`, space separated. INVALID_ARGUMENT if a slot is
// out of range or listed twice, if `base` has a NUL, or if the result plus its terminating
// NUL exceeds `max_size` (the smaller of layout::kCmdlineMaxSize and the kernel's
// cmdline_size + 1).
absl::StatusOr<std::string> BuildCmdline(std::string_view base, std::span<const uint32_t> slots,
                                         uint64_t max_size);

}  // namespace skiff::gen2
