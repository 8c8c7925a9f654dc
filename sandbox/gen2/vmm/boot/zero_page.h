#pragma once

// The zero page (struct boot_params) the VMM hands a 64-bit Linux entry in rsi: the setup
// header copied from the kernel with the loader's fields filled in (type_of_loader 0xff,
// cmd_line_ptr, ramdisk_image/size), and the e820 memory map:
//   RAM       0 .. EBDA (layout::kEbdaStart)
//   reserved  EBDA .. 1 MiB (the MP table lives there; BIOS area)
//   RAM       1 MiB .. end of RAM below the MMIO gap
//   RAM       4 GiB .. (only if the guest has more RAM than fits below the gap)

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "sandbox/gen2/vmm/boot/setup_header.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::boot {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
inline constexpr size_t kZeroPageSize = 4096;
inline constexpr size_t kE820MaxEntries = 128;

// Offsets inside struct boot_params (arch/x86/include/uapi/asm/bootparam.h).
inline constexpr size_t kE820EntriesOffset = 0x1e8;
inline constexpr size_t kE820TableOffset = 0x2d0;
inline constexpr size_t kSentinelOffset = 0x1ef;

#pragma pack(push, 1)
struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
#pragma pack(pop)
static_assert(sizeof(E820Entry) == 20);

// The e820 map for `memory`'s regions (as GuestMemory::Create lays them out).
std::vector<E820Entry> BuildE820Map(const GuestMemory& memory);

struct ZeroPageParams {
  SetupHeader header{};  // the kernel's (bzImage) or a synthesized one (ELF)
  size_t header_size = sizeof(SetupHeader);
  uint64_t cmdline_addr = 0;
  uint64_t initrd_addr = 0;  // 0 if none
  uint64_t initrd_size = 0;
  std::vector<E820Entry> e820;
};

// The setup header an ELF kernel gets (it has none of its own).
SetupHeader SynthesizedElfHeader();

// Builds the 4 KiB page. INVALID_ARGUMENT if the e820 map has too many entries or an
// address does not fit the protocol's 32-bit fields.
absl::StatusOr<std::array<uint8_t, kZeroPageSize>> BuildZeroPage(const ZeroPageParams& params);

}  // namespace skiff::gen2::boot
