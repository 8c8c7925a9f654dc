#include "sandbox/gen2/vmm/cmdline.h"

#include <bitset>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2 {
namespace {

std::string SizeArg(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return absl::StrCat(bytes >> 20, "M");
  if (bytes % (1 << 10) == 0) return absl::StrCat(bytes >> 10, "K");
  return absl::StrCat(bytes);
}

}  // namespace

std::string VirtioMmioDeviceArg(uint32_t slot) {
  return absl::StrFormat("virtio_mmio.device=%s@%#x:%d", SizeArg(layout::kVirtioMmioSlotSize),
                         layout::VirtioMmioAddr(slot), layout::VirtioIrq(slot));
}

absl::StatusOr<std::string> BuildCmdline(std::string_view base, std::span<const uint32_t> slots,
                                         uint64_t max_size) {
  if (base.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("kernel command line contains a NUL byte");
  }
  std::string line(base);
  std::bitset<layout::kVirtioMmioSlots> seen;
  for (uint32_t slot : slots) {
    if (slot >= layout::kVirtioMmioSlots || seen[slot]) {
      return absl::InvalidArgumentError(
          absl::StrFormat("virtio-mmio slot %d: out of range (0..%d) or attached twice", slot,
                          layout::kVirtioMmioSlots - 1));
    }
    seen[slot] = true;
    if (!line.empty()) line += ' ';
    line += VirtioMmioDeviceArg(slot);
  }
  if (line.size() + 1 > max_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel command line of %d bytes exceeds the limit of %d", line.size(), max_size - 1));
  }
  return line;
}

}  // namespace skiff::gen2
