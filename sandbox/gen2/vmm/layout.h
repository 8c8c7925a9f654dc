#pragma once

// The guest-physical memory map of a skiff microVM, and every MMIO slot, port and IRQ
// number the VMM uses. Nothing here is written anywhere else: the boot code, the devices,
// the command line the VMM writes and the test guest all take their numbers from this file.
//
//   0x0000_0000  real-mode IVT and BIOS data area (RAM, left alone)
//   0x0000_0500  GDT (kGdtAddr), then an empty IDT (kIdtAddr)
//   0x0000_6000  free low RAM the VMM never writes: the test guest's AP trampoline
//                (kGuestTrampolineAddr, SIPI vector 6)
//   0x0000_7000  zero page: struct boot_params (kZeroPageAddr)
//   0x0000_8ff0  boot stack top, growing down (kBootStackTop)
//   0x0000_9000  PML4, PDPT, 4 page directories: identity map of the first 4 GiB, 2 MiB pages
//   0x0002_0000  kernel command line (kCmdlineAddr, at most kCmdlineMaxSize bytes)
//   0x0009_fc00  EBDA: the MP table (kMpTableAddr); reserved in the e820 map up to 1 MiB
//   0x0010_0000  kernel (bzImage protected-mode part or ELF segments), then free RAM;
//                the initramfs is placed at the top of RAM below the MMIO gap
//   0xd000_0000  MMIO gap start: virtio-mmio slots, kVirtioMmioSlotSize each
//   0xfec0_0000  IOAPIC (in-kernel irqchip)
//   0xfee0_0000  local APIC (in-kernel irqchip)
//   0xfffb_c000  KVM's identity-map page and TSS (3 pages), used by KVM itself
//   0x1_0000_0000 RAM beyond what fits below the gap, if the guest has more than 3.25 GiB

#include <cstdint>

namespace skiff::gen2::layout {

inline constexpr uint64_t kPageSize = 0x1000;

// Boot structures the VMM writes before the first vCPU runs.
inline constexpr uint64_t kGdtAddr = 0x500;
inline constexpr uint64_t kIdtAddr = 0x520;
inline constexpr uint64_t kZeroPageAddr = 0x7000;
inline constexpr uint64_t kBootStackTop = 0x8ff0;
// Below the zero page and never written by the VMM: a guest may start its APs here
// (the test guest's real-mode trampoline; SIPI vector kGuestTrampolineAddr >> 12).
inline constexpr uint64_t kGuestTrampolineAddr = 0x6000;
inline constexpr uint64_t kPml4Addr = 0x9000;
inline constexpr uint64_t kPdptAddr = 0xa000;
inline constexpr uint64_t kPdAddr = 0xb000;  // 4 pages: 0xb000..0xefff
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x1000;  // including the terminating NUL
inline constexpr uint64_t kMpTableAddr = 0x9fc00;
inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr uint64_t kHighMemStart = 0x100000;  // 1 MiB
inline constexpr uint64_t kKernelLoadAddr = 0x100000;

// The MMIO gap below 4 GiB.
inline constexpr uint64_t kMmioGapStart = 0xd0000000;
inline constexpr uint64_t kMmioGapEnd = 0x100000000;
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
inline constexpr uint64_t kLapicAddr = 0xfee00000;
inline constexpr uint64_t kKvmIdentityMapAddr = 0xfffbc000;
inline constexpr uint64_t kKvmTssAddr = 0xfffbd000;

// virtio-mmio devices: slot i is at kVirtioMmioBase + i * kVirtioMmioSlotSize and raises
// IRQ kVirtioIrqBase + i on the IOAPIC. The slots are fixed so that the guest sees the
// same device at the same address every boot.
inline constexpr uint64_t kVirtioMmioBase = kMmioGapStart;
inline constexpr uint64_t kVirtioMmioSlotSize = 0x1000;
inline constexpr uint32_t kVirtioIrqBase = 5;
inline constexpr uint32_t kVirtioMmioSlots = 8;
inline constexpr uint32_t kSlotBlock = 0;    // root image, read-only (virtio-blk)
inline constexpr uint32_t kSlotNet = 1;      // eth0 (virtio-net on a tap)
inline constexpr uint32_t kSlotControl = 2;  // host↔guest control channel (virtio-console)
inline constexpr uint32_t kSlotScratch = 3;  // a second, writable virtio-blk (tests, volumes)

inline constexpr uint64_t VirtioMmioAddr(uint32_t slot) {
  return kVirtioMmioBase + slot * kVirtioMmioSlotSize;
}
inline constexpr uint32_t VirtioIrq(uint32_t slot) { return kVirtioIrqBase + slot; }

// Legacy port I/O devices.
inline constexpr uint16_t kCom1Port = 0x3f8;  // 8250 UART, 8 ports
inline constexpr uint32_t kCom1Irq = 4;
inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CommandPort = 0x64;
inline constexpr uint16_t kCom1PortCount = 8;  // THR/RBR .. SCR
// PCI configuration mechanism #1. Nothing answers there: the guest sees no PCI bus.
inline constexpr uint16_t kPciConfigAddressPort = 0xcf8;
inline constexpr uint16_t kPciConfigDataPort = 0xcfc;

// The boot GDT at kGdtAddr: null, null, 64-bit code (kBootCodeSelector), data
// (kBootDataSelector), as the Linux boot protocol expects (__BOOT_CS, __BOOT_DS).
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
// The boot page tables at kPml4Addr identity-map this much, in 2 MiB pages.
inline constexpr uint64_t kIdentityMapSize = 4ull << 30;

// The in-kernel IOAPIC has this many input pins; legacy ISA IRQ n is pin n.
inline constexpr uint32_t kIoapicPins = 24;

// Limits.
inline constexpr uint32_t kMaxVcpus = 8;
inline constexpr uint64_t kMinMemory = 16ull << 20;

}  // namespace skiff::gen2::layout
