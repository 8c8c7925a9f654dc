#pragma once

// The Intel MultiProcessor Specification 1.4 tables a guest without ACPI reads to find its
// CPUs and how IRQs reach the IOAPIC: an MP floating pointer at layout::kMpTableAddr (in the
// EBDA's first KiB, where Linux's smp_scan_config looks) followed by the configuration table:
//   one processor entry per vCPU (LAPIC id = vCPU index, vCPU 0 the bootstrap processor),
//   one ISA bus (id 0),
//   the IOAPIC (id = number of vCPUs, at layout::kIoapicAddr),
//   I/O interrupt entries: ISA IRQ n → IOAPIC pin n for every legacy IRQ 0..15 and every
//     virtio-mmio slot's IRQ (edge-triggered, active high: "conforms to the bus"),
//   local interrupt entries: ExtINT → LINT0, NMI → LINT1 on every LAPIC.
// Both structures carry the spec's byte checksums (every byte summed is 0 mod 256).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::gen2::boot {

// Entry types and sizes, for tests and the test guest's parser.
inline constexpr uint8_t kMpProcessorEntry = 0;
inline constexpr uint8_t kMpBusEntry = 1;
inline constexpr uint8_t kMpIoapicEntry = 2;
inline constexpr uint8_t kMpIoInterruptEntry = 3;
inline constexpr uint8_t kMpLocalInterruptEntry = 4;
inline constexpr size_t kMpFloatingPointerSize = 16;
inline constexpr size_t kMpConfigHeaderSize = 44;
inline constexpr size_t kMpProcessorEntrySize = 20;
inline constexpr size_t kMpOtherEntrySize = 8;
inline constexpr uint8_t kMpIsaBusId = 0;
inline constexpr uint32_t kMpLegacyIrqs = 16;

// The bytes to write at layout::kMpTableAddr for `vcpus` vCPUs (1..layout::kMaxVcpus).
absl::StatusOr<std::vector<uint8_t>> BuildMpTable(uint32_t vcpus);

}  // namespace skiff::gen2::boot
