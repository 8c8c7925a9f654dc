#include "sandbox/gen2/vmm/boot/mptable.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::boot {
namespace {

constexpr uint8_t kSpecRev = 4;  // MP spec 1.4
constexpr uint8_t kLapicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
constexpr uint8_t kCpuEnabled = 0x01;
constexpr uint8_t kCpuBootstrap = 0x02;
constexpr uint32_t kCpuSignature = 0x600;        // family 6
constexpr uint32_t kCpuFeatures = (1 << 9) | 1;  // APIC, FPU
constexpr uint8_t kIntTypeInt = 0;
constexpr uint8_t kIntTypeNmi = 1;
constexpr uint8_t kIntTypeExtInt = 3;
constexpr uint8_t kAllLapics = 0xff;

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(v); }
  void U16(uint16_t v) { Bytes(&v, 2); }
  void U32(uint32_t v) { Bytes(&v, 4); }
  void Str(const char* s, size_t n) {  // space-padded, not terminated
    const size_t len = strnlen(s, n);
    Bytes(s, len);
    for (size_t i = len; i < n; ++i) U8(' ');
  }
  void Bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_->insert(out_->end(), b, b + n);
  }

 private:
  std::vector<uint8_t>* out_;
};

uint8_t Checksum(const uint8_t* p, size_t n) {
  uint8_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += p[i];
  return static_cast<uint8_t>(-sum);
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> BuildMpTable(uint32_t vcpus) {
  if (vcpus == 0 || vcpus > layout::kMaxVcpus) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mptable: %d vCPUs (1..%d)", vcpus, layout::kMaxVcpus));
  }
  const uint8_t ioapic_id = static_cast<uint8_t>(vcpus);
  uint32_t last_irq = kMpLegacyIrqs - 1;
  const uint32_t last_virtio_irq = layout::VirtioIrq(layout::kVirtioMmioSlots - 1);
  if (last_virtio_irq > last_irq) last_irq = last_virtio_irq;
  if (last_irq >= layout::kIoapicPins) {
    return absl::InternalError(absl::StrFormat("mptable: IRQ %d has no IOAPIC pin", last_irq));
  }

  std::vector<uint8_t> table;
  Writer w(&table);
  // The floating pointer; physptr points right behind it.
  const uint64_t config_addr = layout::kMpTableAddr + kMpFloatingPointerSize;
  w.Str("_MP_", 4);
  w.U32(static_cast<uint32_t>(config_addr));
  w.U8(1);  // length in 16-byte units
  w.U8(kSpecRev);
  w.U8(0);  // checksum, below
  w.U8(0);  // feature 1: 0 = a configuration table is present
  w.U8(0);  // feature 2: bit 7 clear = virtual wire mode, no IMCR
  w.U8(0);
  w.U8(0);
  w.U8(0);
  table[10] = Checksum(table.data(), kMpFloatingPointerSize);

  // The configuration table header; length, entry count and checksum patched below.
  const size_t header = table.size();
  w.Str("PCMP", 4);
  w.U16(0);  // base table length
  w.U8(kSpecRev);
  w.U8(0);  // checksum
  w.Str("SKIFF", 8);
  w.Str("MICROVM", 12);
  w.U32(0);  // OEM table pointer
  w.U16(0);  // OEM table size
  w.U16(0);  // entry count
  w.U32(static_cast<uint32_t>(layout::kLapicAddr));
  w.U16(0);  // extended table length
  w.U8(0);   // extended table checksum
  w.U8(0);
  uint16_t entries = 0;

  for (uint32_t cpu = 0; cpu < vcpus; ++cpu) {
    w.U8(kMpProcessorEntry);
    w.U8(static_cast<uint8_t>(cpu));  // LAPIC id
    w.U8(kLapicVersion);
    w.U8(kCpuEnabled | (cpu == 0 ? kCpuBootstrap : 0));
    w.U32(kCpuSignature);
    w.U32(kCpuFeatures);
    w.U32(0);
    w.U32(0);
    ++entries;
  }
  w.U8(kMpBusEntry);
  w.U8(kMpIsaBusId);
  w.Str("ISA", 6);
  ++entries;
  w.U8(kMpIoapicEntry);
  w.U8(ioapic_id);
  w.U8(kIoapicVersion);
  w.U8(1);  // enabled
  w.U32(static_cast<uint32_t>(layout::kIoapicAddr));
  ++entries;
  for (uint32_t irq = 0; irq <= last_irq; ++irq) {
    w.U8(kMpIoInterruptEntry);
    w.U8(kIntTypeInt);
    w.U16(0);  // polarity and trigger conform to the bus: ISA, edge, active high
    w.U8(kMpIsaBusId);
    w.U8(static_cast<uint8_t>(irq));
    w.U8(ioapic_id);
    w.U8(static_cast<uint8_t>(irq));  // pin
    ++entries;
  }
  const uint8_t local[][2] = {{kIntTypeExtInt, 0}, {kIntTypeNmi, 1}};
  for (const auto& [type, lint] : local) {
    w.U8(kMpLocalInterruptEntry);
    w.U8(type);
    w.U16(0);
    w.U8(kMpIsaBusId);
    w.U8(0);
    w.U8(kAllLapics);
    w.U8(lint);
    ++entries;
  }

  const size_t length = table.size() - header;
  const uint16_t length16 = static_cast<uint16_t>(length);
  std::memcpy(&table[header + 4], &length16, 2);
  std::memcpy(&table[header + 34], &entries, 2);
  table[header + 7] = Checksum(&table[header], length);

  if (table.size() > layout::kHighMemStart - layout::kMpTableAddr) {
    return absl::InternalError(
        absl::StrFormat("mptable: %d bytes do not fit below 1 MiB", table.size()));
  }
  return table;
}

}  // namespace skiff::gen2::boot
