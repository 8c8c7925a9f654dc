#include "sandbox/gen2/vmm/boot/bzimage.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_format.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::boot {
namespace {

constexpr uint64_t kSectorSize = 512;
constexpr uint64_t kJumpByteOffset = 0x201;  // offset of the setup header's end, from 0x202
constexpr uint64_t kHeaderMagicOffset = 0x202;
constexpr uint64_t kBootFlagOffset = 0x1fe;
// The default when setup_sects is 0 (very old kernels).
constexpr uint8_t kDefaultSetupSects = 4;

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError("bzImage: " + what);
}

}  // namespace

bool LooksLikeBzImage(std::span<const uint8_t> file) {
  if (file.size() < kHeaderMagicOffset + 4) return false;
  uint16_t flag;
  uint32_t magic;
  std::memcpy(&flag, file.data() + kBootFlagOffset, 2);
  std::memcpy(&magic, file.data() + kHeaderMagicOffset, 4);
  return flag == kBootFlag && magic == kHeaderMagic;
}

absl::StatusOr<BzImage> ParseBzImage(std::span<const uint8_t> file, uint64_t ram_end) {
  if (file.size() < kSetupHeaderOffset + sizeof(SetupHeader)) {
    return Invalid(
        absl::StrFormat("file of %d bytes is too short for a setup header", file.size()));
  }
  BzImage image;
  // The header's declared length; copy only that much (the rest of ours stays zero).
  image.header_size = std::min<size_t>(
      kHeaderMagicOffset + file[kJumpByteOffset] - kSetupHeaderOffset, sizeof(SetupHeader));
  std::memcpy(&image.header, file.data() + kSetupHeaderOffset, image.header_size);
  const SetupHeader& h = image.header;

  if (h.boot_flag != kBootFlag) {
    return Invalid(absl::StrFormat("boot flag %#x, want %#x", h.boot_flag, kBootFlag));
  }
  if (h.header != kHeaderMagic) {
    return Invalid(absl::StrFormat("header magic %#x, want \"HdrS\"", h.header));
  }
  if (h.version < kMinProtocolVersion) {
    return Invalid(absl::StrFormat("boot protocol %d.%02d, need at least 2.12 (64-bit entry)",
                                   h.version >> 8, h.version & 0xff));
  }
  if (image.header_size < offsetof(SetupHeader, init_size) + sizeof(h.init_size)) {
    return Invalid(absl::StrFormat("setup header of %d bytes is shorter than protocol 2.12's",
                                   image.header_size));
  }
  if (!(h.xloadflags & kXlfKernel64)) {
    return Invalid("no 64-bit entry point (XLF_KERNEL_64 not set in xloadflags)");
  }
  if (!(h.loadflags & kLoadedHigh)) {
    return Invalid("not a bzImage (LOADED_HIGH not set in loadflags)");
  }
  const uint64_t setup_sects = h.setup_sects == 0 ? kDefaultSetupSects : h.setup_sects;
  const uint64_t setup_size = (setup_sects + 1) * kSectorSize;
  if (setup_size >= file.size()) {
    return Invalid(absl::StrFormat("setup_sects %d puts the kernel at %d, past the file's end (%d)",
                                   setup_sects, setup_size, file.size()));
  }
  image.protected_mode = file.subspan(setup_size);
  if (image.protected_mode.size() <= kEntry64Offset) {
    return Invalid(absl::StrFormat("protected-mode part of %d bytes has no 64-bit entry at %#x",
                                   image.protected_mode.size(), kEntry64Offset));
  }
  if (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1)) != 0) {
    return Invalid(
        absl::StrFormat("kernel_alignment %#x is not a power of two", h.kernel_alignment));
  }
  if (h.relocatable_kernel) {
    image.load_addr = layout::kKernelLoadAddr;
  } else {
    if (h.pref_address < layout::kHighMemStart || h.pref_address % layout::kPageSize != 0) {
      return Invalid(
          absl::StrFormat("not relocatable and pref_address %#x is below 1 MiB or not page aligned",
                          h.pref_address));
    }
    image.load_addr = h.pref_address;
  }
  // A relocatable kernel loaded low decompresses itself to where it runs: its load address
  // or, if higher, pref_address (LOAD_PHYSICAL_ADDR, 16 MiB for Debian's). It needs
  // init_size bytes from there, and nothing of ours (the initramfs) may sit in that range.
  uint64_t run_addr = image.load_addr;
  if (h.relocatable_kernel && h.pref_address > run_addr && h.pref_address < ram_end) {
    run_addr = h.pref_address;
  }
  const uint64_t need = std::max<uint64_t>(image.protected_mode.size(), h.init_size);
  if (run_addr > ram_end || need > ram_end - run_addr) {
    return Invalid(absl::StrFormat(
        "kernel needs %#x bytes at %#x (init_size %#x) but RAM below the MMIO gap ends at %#x",
        need, run_addr, h.init_size, ram_end));
  }
  image.memory_end = std::max(image.load_addr + image.protected_mode.size(), run_addr + need);
  image.entry = image.load_addr + kEntry64Offset;
  return image;
}

absl::Status LoadBzImage(const BzImage& image, const GuestMemory& memory) {
  return memory.Write(image.load_addr, image.protected_mode.data(), image.protected_mode.size());
}

}  // namespace skiff::gen2::boot
