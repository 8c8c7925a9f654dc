#include "sandbox/gen2/vmm/boot/x86_setup.h"

#include <cstring>

#include "sandbox/common/status.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::boot {
namespace {

constexpr uint64_t kPresentWritable = 0x3;
constexpr uint64_t kPageSize2M = 0x80;
constexpr uint64_t kEntriesPerTable = 512;
constexpr uint64_t kHugePage = 2ull << 20;
constexpr uint64_t kGdtEntries = 4;
constexpr uint64_t kRflagsReserved = 0x2;  // bit 1 always reads 1

kvm_segment Segment(uint16_t selector, uint8_t type) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.s = 1;  // code/data, not system
  s.g = 1;
  return s;
}

}  // namespace

absl::Status WriteBootTables(const GuestMemory& memory) {
  const uint64_t gdt[kGdtEntries] = {0, 0, kGdtCode64, kGdtData};
  static_assert(layout::kGdtAddr + sizeof(gdt) <= layout::kIdtAddr);
  static_assert(layout::kBootCodeSelector == 2 * 8 && layout::kBootDataSelector == 3 * 8);
  SKIFF_RETURN_IF_ERROR(memory.WriteObj(layout::kGdtAddr, gdt));
  SKIFF_RETURN_IF_ERROR(memory.WriteObj(layout::kIdtAddr, uint64_t{0}));

  // PML4[0] → PDPT; PDPT[i] → page directory i; each PD maps 1 GiB in 2 MiB pages.
  constexpr uint64_t kDirectories = layout::kIdentityMapSize >> 30;
  static_assert(layout::kPdAddr + kDirectories * layout::kPageSize <= layout::kCmdlineAddr);
  SKIFF_RETURN_IF_ERROR(memory.WriteObj(layout::kPml4Addr, layout::kPdptAddr | kPresentWritable));
  for (uint64_t i = 0; i < kDirectories; ++i) {
    const uint64_t pd = layout::kPdAddr + i * layout::kPageSize;
    SKIFF_RETURN_IF_ERROR(memory.WriteObj(layout::kPdptAddr + i * 8, pd | kPresentWritable));
    uint64_t entries[kEntriesPerTable];
    for (uint64_t j = 0; j < kEntriesPerTable; ++j) {
      entries[j] = ((i * kEntriesPerTable + j) * kHugePage) | kPresentWritable | kPageSize2M;
    }
    SKIFF_RETURN_IF_ERROR(memory.WriteObj(pd, entries));
  }
  return absl::OkStatus();
}

void SetLongModeSregs(kvm_sregs* sregs) {
  kvm_segment code = Segment(layout::kBootCodeSelector, /*type=execute/read, accessed*/ 0xb);
  code.l = 1;  // 64-bit
  code.db = 0;
  kvm_segment data = Segment(layout::kBootDataSelector, /*type=read/write, accessed*/ 0x3);
  data.db = 1;
  sregs->cs = code;
  sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;

  // A busy 64-bit TSS in TR and an unusable LDT: what VM entry checks on hardware.
  kvm_segment tr{};
  tr.limit = 0x67;
  tr.type = 0xb;
  tr.present = 1;
  sregs->tr = tr;
  kvm_segment ldt{};
  ldt.type = 0x2;
  ldt.unusable = 1;
  sregs->ldt = ldt;

  sregs->gdt.base = layout::kGdtAddr;
  sregs->gdt.limit = kGdtEntries * 8 - 1;
  sregs->idt.base = layout::kIdtAddr;
  sregs->idt.limit = 7;

  sregs->cr0 = kCr0LongMode;
  sregs->cr3 = layout::kPml4Addr;
  sregs->cr4 = kCr4Pae;
  sregs->efer = kEferLme | kEferLma;
}

kvm_regs BootRegs(uint64_t entry, uint64_t zero_page) {
  kvm_regs regs{};
  regs.rflags = kRflagsReserved;
  regs.rip = entry;
  regs.rsp = layout::kBootStackTop;
  regs.rbp = layout::kBootStackTop;
  regs.rsi = zero_page;
  return regs;
}

}  // namespace skiff::gen2::boot
