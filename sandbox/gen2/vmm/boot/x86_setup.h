#pragma once

// The CPU state the 64-bit Linux boot protocol asks for at the kernel's 64-bit entry,
// built by the VMM instead of firmware:
//   - a GDT at layout::kGdtAddr with a flat 64-bit code segment (layout::kBootCodeSelector)
//     and a flat data segment (layout::kBootDataSelector); an empty IDT at layout::kIdtAddr;
//   - identity-mapped page tables for the first 4 GiB in 2 MiB pages at layout::kPml4Addr;
//   - long mode: CR0 PE|MP|ET|NE|WP|AM|PG, CR4 PAE, EFER LME|LMA, CR3 = the PML4;
//   - rip = the kernel's 64-bit entry, rsi = the zero page, rsp = layout::kBootStackTop,
//     interrupts off.

#include <linux/kvm.h>

#include <cstdint>

#include "absl/status/status.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::boot {

inline constexpr uint64_t kCr0LongMode = 0x80050033;
inline constexpr uint64_t kCr4Pae = 0x20;
inline constexpr uint64_t kEferLme = 0x100;
inline constexpr uint64_t kEferLma = 0x400;

// The GDT entries as written, for tests: null, null, code, data.
inline constexpr uint64_t kGdtCode64 = 0x00af9b000000ffff;
inline constexpr uint64_t kGdtData = 0x00cf93000000ffff;

// GDT, IDT and page tables into guest memory.
absl::Status WriteBootTables(const GuestMemory& memory);

// Fills the segment, control and descriptor-table parts of `sregs` (fetched from the vCPU
// first, so the rest — APIC base, interrupt bitmap — is KVM's).
void SetLongModeSregs(kvm_sregs* sregs);

// General-purpose registers at the 64-bit entry.
kvm_regs BootRegs(uint64_t entry, uint64_t zero_page);

}  // namespace skiff::gen2::boot
