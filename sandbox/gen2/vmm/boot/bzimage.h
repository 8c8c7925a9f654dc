#pragma once

// A bzImage parsed and validated against the Linux/x86 boot protocol, 64-bit entry:
// "HdrS", version >= 2.12 with XLF_KERNEL_64, LOADED_HIGH, setup_sects inside the file,
// a power-of-two kernel_alignment, and a protected-mode part (everything after the setup
// sectors) that, with init_size, fits in guest memory at its load address. A relocatable
// kernel is loaded at layout::kKernelLoadAddr (1 MiB, where the kernel's own decompressor
// moves itself from); one that is not is loaded at its pref_address. The 64-bit entry is
// the load address + 0x200.

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "sandbox/gen2/vmm/boot/setup_header.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::boot {

struct BzImage {
  SetupHeader header{};    // as found in the file (bytes past header_size are zero)
  size_t header_size = 0;  // bytes of the header the file declares (0x202 + jump byte - 0x1f1)
  uint64_t load_addr = 0;  // where the protected-mode part goes
  uint64_t entry = 0;      // 64-bit entry point (guest-physical)
  std::span<const uint8_t> protected_mode;  // into the file passed to ParseBzImage
  uint64_t memory_end = 0;                  // load_addr + max(protected-mode size, init_size)
};

// True if `file` looks like a bzImage (boot flag and "HdrS"), without validating it.
bool LooksLikeBzImage(std::span<const uint8_t> file);

// Parses and validates; `ram_end` (end of RAM below the MMIO gap) bounds where the kernel may sit.
// The span in the result points into `file`.
absl::StatusOr<BzImage> ParseBzImage(std::span<const uint8_t> file, uint64_t ram_end);

// Copies the protected-mode part to its load address.
absl::Status LoadBzImage(const BzImage& image, const GuestMemory& memory);

}  // namespace skiff::gen2::boot
