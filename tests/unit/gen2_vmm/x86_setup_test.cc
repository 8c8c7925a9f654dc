// The boot page tables, GDT and long-mode register state.

#include "sandbox/gen2/vmm/boot/x86_setup.h"

#include <gtest/gtest.h>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::boot {
namespace {

TEST(X86SetupTest, IdentityMapsFourGiBAndWritesTheGdt) {
  std::vector<uint8_t> ram(1 << 20);
  GuestMemory memory = GuestMemory::FromBuffer(0, ram);
  SKIFF_ASSERT_OK(WriteBootTables(memory));
  auto read = [&](uint64_t gpa) { return *memory.ReadObj<uint64_t>(gpa); };
  EXPECT_EQ(read(layout::kPml4Addr), layout::kPdptAddr | 3);
  // Walk a few addresses through the tables: each maps to itself.
  for (uint64_t addr : {0ull, 0x100000ull, 0x7fe00000ull, 0xfee00000ull, 0xffe00000ull}) {
    const uint64_t pdpte = read(layout::kPdptAddr + ((addr >> 30) & 511) * 8);
    ASSERT_TRUE(pdpte & 1);
    const uint64_t pde = read((pdpte & ~0xfffull) + ((addr >> 21) & 511) * 8);
    ASSERT_EQ(pde & 0x83, 0x83u) << std::hex << addr;  // present, writable, 2 MiB
    EXPECT_EQ(pde & ~0x1fffffull, addr & ~0x1fffffull) << std::hex << addr;
  }
  EXPECT_EQ(read(layout::kGdtAddr + layout::kBootCodeSelector), kGdtCode64);
  EXPECT_EQ(read(layout::kGdtAddr + layout::kBootDataSelector), kGdtData);
}

TEST(X86SetupTest, LongModeRegisters) {
  kvm_sregs sregs{};
  SetLongModeSregs(&sregs);
  EXPECT_EQ(sregs.cs.selector, layout::kBootCodeSelector);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.ds.selector, layout::kBootDataSelector);
  EXPECT_EQ(sregs.cr3, layout::kPml4Addr);
  EXPECT_EQ(sregs.cr0 & 0x80000001, 0x80000001u);  // PG, PE
  EXPECT_EQ(sregs.efer, kEferLme | kEferLma);
  EXPECT_EQ(sregs.tr.type, 0xb);
  const kvm_regs regs = BootRegs(0x100200, layout::kZeroPageAddr);
  EXPECT_EQ(regs.rip, 0x100200u);
  EXPECT_EQ(regs.rsi, layout::kZeroPageAddr);
  EXPECT_EQ(regs.rflags, 2u);  // interrupts off
}

}  // namespace
}  // namespace skiff::gen2::boot
