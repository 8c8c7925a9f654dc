#pragma once

// The Linux/x86 boot protocol's setup header (Documentation/arch/x86/boot.rst): found at
// offset 0x1f1 of a bzImage and copied to the same offset of the zero page
// (struct boot_params), where the loader fills in its own fields.

#include <cstdint>

namespace skiff::gen2::boot {

inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlag = 0xaa55;
inline constexpr uint16_t kMinProtocolVersion = 0x020c;  // 2.12: xloadflags
inline constexpr uint8_t kLoadedHigh = 0x01;             // loadflags: loaded at 1 MiB
inline constexpr uint8_t kCanUseHeap = 0x80;             // loadflags
inline constexpr uint16_t kXlfKernel64 = 0x01;           // xloadflags: has a 64-bit entry
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;
// The 64-bit entry point is this far into the protected-mode part.
inline constexpr uint64_t kEntry64Offset = 0x200;
// initrd_addr_max for kernels that do not say (protocol < 2.03), and for ELF kernels.
inline constexpr uint32_t kDefaultInitrdAddrMax = 0x37ffffff;

#pragma pack(push, 1)
struct SetupHeader {
  uint8_t setup_sects;
  uint16_t root_flags;
  uint32_t syssize;
  uint16_t ram_size;
  uint16_t vid_mode;
  uint16_t root_dev;
  uint16_t boot_flag;
  uint16_t jump;
  uint32_t header;
  uint16_t version;
  uint32_t realmode_swtch;
  uint16_t start_sys_seg;
  uint16_t kernel_version;
  uint8_t type_of_loader;
  uint8_t loadflags;
  uint16_t setup_move_size;
  uint32_t code32_start;
  uint32_t ramdisk_image;
  uint32_t ramdisk_size;
  uint32_t bootsect_kludge;
  uint16_t heap_end_ptr;
  uint8_t ext_loader_ver;
  uint8_t ext_loader_type;
  uint32_t cmd_line_ptr;
  uint32_t initrd_addr_max;
  uint32_t kernel_alignment;
  uint8_t relocatable_kernel;
  uint8_t min_alignment;
  uint16_t xloadflags;
  uint32_t cmdline_size;
  uint32_t hardware_subarch;
  uint64_t hardware_subarch_data;
  uint32_t payload_offset;
  uint32_t payload_length;
  uint64_t setup_data;
  uint64_t pref_address;
  uint32_t init_size;
  uint32_t handover_offset;
  uint32_t kernel_info_offset;
};
#pragma pack(pop)
static_assert(sizeof(SetupHeader) == 0x26c - kSetupHeaderOffset);

}  // namespace skiff::gen2::boot
