#include "sandbox/gen2/vmm/boot/zero_page.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::boot {

std::vector<E820Entry> BuildE820Map(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  for (const MemoryRegion& r : memory.regions()) {
    if (r.gpa == 0) {
      map.push_back({0, layout::kEbdaStart, kE820Ram});
      map.push_back(
          {layout::kEbdaStart, layout::kHighMemStart - layout::kEbdaStart, kE820Reserved});
      if (r.size > layout::kHighMemStart) {
        map.push_back({layout::kHighMemStart, r.size - layout::kHighMemStart, kE820Ram});
      }
    } else {
      map.push_back({r.gpa, r.size, kE820Ram});
    }
  }
  return map;
}

SetupHeader SynthesizedElfHeader() {
  SetupHeader h{};
  h.boot_flag = kBootFlag;
  h.header = kHeaderMagic;
  h.version = kMinProtocolVersion;
  h.loadflags = kLoadedHigh;
  h.kernel_alignment = 0x1000000;  // 16 MiB, CONFIG_PHYSICAL_ALIGN's default
  h.initrd_addr_max = kDefaultInitrdAddrMax;
  h.cmdline_size = layout::kCmdlineMaxSize - 1;
  return h;
}

absl::StatusOr<std::array<uint8_t, kZeroPageSize>> BuildZeroPage(const ZeroPageParams& params) {
  if (params.e820.size() > kE820MaxEntries) {
    return absl::InvalidArgumentError(absl::StrFormat("zero page: %d e820 entries (at most %d)",
                                                      params.e820.size(), kE820MaxEntries));
  }
  if (params.cmdline_addr > UINT32_MAX || params.initrd_addr > UINT32_MAX ||
      params.initrd_size > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrFormat("zero page: command line at %#x or initramfs at %#x (+%#x) beyond 4 GiB",
                        params.cmdline_addr, params.initrd_addr, params.initrd_size));
  }
  std::array<uint8_t, kZeroPageSize> page{};

  SetupHeader h{};
  std::memcpy(&h, &params.header, std::min(params.header_size, sizeof(SetupHeader)));
  h.type_of_loader = kLoaderTypeUndefined;
  h.cmd_line_ptr = static_cast<uint32_t>(params.cmdline_addr);
  h.ramdisk_image = static_cast<uint32_t>(params.initrd_addr);
  h.ramdisk_size = static_cast<uint32_t>(params.initrd_size);
  std::memcpy(page.data() + kSetupHeaderOffset, &h, sizeof(h));

  page[kE820EntriesOffset] = static_cast<uint8_t>(params.e820.size());
  std::memcpy(page.data() + kE820TableOffset, params.e820.data(),
              params.e820.size() * sizeof(E820Entry));
  return page;
}

}  // namespace skiff::gen2::boot
