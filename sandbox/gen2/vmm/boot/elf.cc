#include "sandbox/gen2/vmm/boot/elf.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::boot {
namespace {

constexpr size_t kMaxProgramHeaders = 64;

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError("ELF kernel: " + what);
}

// [off, off + len) inside a file of `size` bytes, without overflow.
bool InFile(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

}  // namespace

bool LooksLikeElf(std::span<const uint8_t> file) {
  return file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0;
}

absl::StatusOr<ElfImage> ParseElf(std::span<const uint8_t> file, const GuestMemory& memory) {
  if (file.size() < sizeof(Elf64_Ehdr)) {
    return Invalid(absl::StrFormat("file of %d bytes is too short for an ELF header", file.size()));
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return Invalid("bad magic");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return Invalid("not ELFCLASS64");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Invalid("not little-endian");
  if (eh.e_machine != EM_X86_64) {
    return Invalid(absl::StrFormat("e_machine %d is not x86-64", eh.e_machine));
  }
  if (eh.e_type != ET_EXEC) return Invalid(absl::StrFormat("e_type %d is not ET_EXEC", eh.e_type));
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) {
    return Invalid(absl::StrFormat("e_phentsize %d, want %d", eh.e_phentsize, sizeof(Elf64_Phdr)));
  }
  if (eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders) {
    return Invalid(
        absl::StrFormat("%d program headers (1..%d allowed)", eh.e_phnum, kMaxProgramHeaders));
  }
  if (!InFile(eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), file.size())) {
    return Invalid(absl::StrFormat("program headers at %#x (%d of them) run past the file's end",
                                   eh.e_phoff, eh.e_phnum));
  }

  ElfImage image;
  image.entry = eh.e_entry;
  bool entry_loaded = false;
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, file.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
    if (ph.p_type != PT_LOAD) continue;
    if (!InFile(ph.p_offset, ph.p_filesz, file.size())) {
      return Invalid(absl::StrFormat("segment %d: file range [%#x, +%#x) is past the file's end", i,
                                     ph.p_offset, ph.p_filesz));
    }
    if (ph.p_filesz > ph.p_memsz) {
      return Invalid(
          absl::StrFormat("segment %d: p_filesz %#x > p_memsz %#x", i, ph.p_filesz, ph.p_memsz));
    }
    if (ph.p_paddr < layout::kHighMemStart) {
      return Invalid(absl::StrFormat("segment %d: p_paddr %#x is below 1 MiB", i, ph.p_paddr));
    }
    if (!memory.Slice(ph.p_paddr, ph.p_memsz).ok()) {
      return Invalid(absl::StrFormat("segment %d: [%#x, +%#x) is outside guest memory", i,
                                     ph.p_paddr, ph.p_memsz));
    }
    image.segments.push_back({ph.p_paddr, ph.p_memsz, file.subspan(ph.p_offset, ph.p_filesz)});
    image.memory_end = std::max(image.memory_end, ph.p_paddr + ph.p_memsz);
    if (eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz) entry_loaded = true;
  }
  if (image.segments.empty()) return Invalid("no PT_LOAD segment");
  if (!entry_loaded) {
    return Invalid(absl::StrFormat("entry point %#x is not inside a loaded segment", eh.e_entry));
  }
  return image;
}

absl::Status LoadElf(const ElfImage& image, const GuestMemory& memory) {
  for (const ElfSegment& s : image.segments) {
    SKIFF_ASSIGN_OR_RETURN(std::span<uint8_t> dst, memory.Slice(s.paddr, s.mem_size));
    std::memcpy(dst.data(), s.data.data(), s.data.size());
    std::memset(dst.data() + s.data.size(), 0, dst.size() - s.data.size());
  }
  return absl::OkStatus();
}

}  // namespace skiff::gen2::boot
