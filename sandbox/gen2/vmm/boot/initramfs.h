#pragma once

// Where the initramfs goes and its loading: as high as possible in RAM below the MMIO gap,
// at most the kernel's initrd_addr_max, page aligned, and above the memory the kernel
// needs (the kernel's memory_end). The file is read straight into guest memory.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::boot {

struct InitramfsPlacement {
  uint64_t addr = 0;
  uint64_t size = 0;
};

// RESOURCE_EXHAUSTED if it does not fit between kernel_end and the limit.
absl::StatusOr<uint64_t> PlaceInitramfs(uint64_t size, uint64_t kernel_end,
                                        uint64_t initrd_addr_max, const GuestMemory& memory);

absl::StatusOr<InitramfsPlacement> LoadInitramfs(const std::string& path, uint64_t kernel_end,
                                                 uint64_t initrd_addr_max,
                                                 const GuestMemory& memory);

}  // namespace skiff::gen2::boot
