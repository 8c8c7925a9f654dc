#pragma once

// An ELF64 x86-64 executable (a Linux vmlinux, or the test guest's ELF build) parsed and
// validated for direct loading: every PT_LOAD segment is copied to its physical address
// (p_paddr) and zero-filled up to p_memsz. Every offset and size is checked against the
// file, overflow included; every segment must lie in RAM at or above 1 MiB (below that are
// the VMM's boot structures); the entry point (e_entry, a physical address for vmlinux)
// must lie inside a loaded segment.

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::boot {

struct ElfSegment {
  uint64_t paddr = 0;
  uint64_t mem_size = 0;
  std::span<const uint8_t> data;  // file bytes, data.size() <= mem_size
};

struct ElfImage {
  uint64_t entry = 0;
  std::vector<ElfSegment> segments;
  uint64_t memory_end = 0;  // highest paddr + memsz of any segment
};

// True if `file` starts with the ELF magic.
bool LooksLikeElf(std::span<const uint8_t> file);

// Parses and validates against `memory` (segments must fit in it). Spans point into `file`.
absl::StatusOr<ElfImage> ParseElf(std::span<const uint8_t> file, const GuestMemory& memory);

// Copies the segments and zero-fills their .bss parts.
absl::Status LoadElf(const ElfImage& image, const GuestMemory& memory);

}  // namespace skiff::gen2::boot
