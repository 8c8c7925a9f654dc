// The MP table: checksums, the floating pointer's pointer, one processor entry per vCPU
// with vCPU 0 the bootstrap processor, the IOAPIC, ISA IRQ routing for the legacy IRQs,
// COM1 and every virtio slot.

#include "sandbox/gen2/vmm/boot/mptable.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::boot {
namespace {

using ::skiff::testing::StatusIs;

uint8_t Sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

template <typename T>
T Get(const std::vector<uint8_t>& v, size_t off) {
  T x;
  std::memcpy(&x, v.data() + off, sizeof(T));
  return x;
}

struct Parsed {
  std::vector<std::pair<uint8_t, uint8_t>> cpus;  // (lapic id, flags)
  int buses = 0;
  uint8_t ioapic_id = 0xff;
  uint32_t ioapic_addr = 0;
  std::map<uint8_t, std::pair<uint8_t, uint8_t>> irqs;  // src irq → (dst apic, pin)
  int local = 0;
};

Parsed ParseTable(const std::vector<uint8_t>& t) {
  Parsed p;
  const size_t base = kMpFloatingPointerSize;
  const uint16_t count = Get<uint16_t>(t, base + 34);
  size_t off = base + kMpConfigHeaderSize;
  for (uint16_t i = 0; i < count; ++i) {
    const uint8_t type = t.at(off);
    if (type == kMpProcessorEntry) {
      p.cpus.emplace_back(t[off + 1], t[off + 3]);
      off += kMpProcessorEntrySize;
      continue;
    }
    if (type == kMpBusEntry) {
      ++p.buses;
      EXPECT_EQ(0, std::memcmp(&t[off + 2], "ISA   ", 6));
    } else if (type == kMpIoapicEntry) {
      p.ioapic_id = t[off + 1];
      p.ioapic_addr = Get<uint32_t>(t, off + 4);
    } else if (type == kMpIoInterruptEntry) {
      p.irqs[t[off + 5]] = {t[off + 6], t[off + 7]};
    } else if (type == kMpLocalInterruptEntry) {
      ++p.local;
    } else {
      ADD_FAILURE() << "unknown entry type " << int{type};
    }
    off += kMpOtherEntrySize;
  }
  EXPECT_EQ(off, t.size());
  return p;
}

class MpTableTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(MpTableTest, ChecksumsAndContents) {
  const uint32_t vcpus = GetParam();
  SKIFF_ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> t, BuildMpTable(vcpus));
  // Floating pointer.
  ASSERT_GE(t.size(), kMpFloatingPointerSize + kMpConfigHeaderSize);
  EXPECT_EQ(0, std::memcmp(t.data(), "_MP_", 4));
  EXPECT_EQ(Get<uint32_t>(t, 4), layout::kMpTableAddr + kMpFloatingPointerSize);
  EXPECT_EQ(t[8], 1);  // 16 bytes
  EXPECT_EQ(t[9], 4);  // spec 1.4
  EXPECT_EQ(Sum(t.data(), kMpFloatingPointerSize), 0);
  // Configuration table.
  const uint8_t* c = t.data() + kMpFloatingPointerSize;
  EXPECT_EQ(0, std::memcmp(c, "PCMP", 4));
  const uint16_t length = Get<uint16_t>(t, kMpFloatingPointerSize + 4);
  EXPECT_EQ(length, t.size() - kMpFloatingPointerSize);
  EXPECT_EQ(Sum(c, length), 0);
  EXPECT_EQ(Get<uint32_t>(t, kMpFloatingPointerSize + 36), layout::kLapicAddr);
  EXPECT_LE(layout::kMpTableAddr + t.size(), layout::kHighMemStart);

  const Parsed p = ParseTable(t);
  ASSERT_EQ(p.cpus.size(), vcpus);
  for (uint32_t i = 0; i < vcpus; ++i) {
    EXPECT_EQ(p.cpus[i].first, i);
    EXPECT_EQ(p.cpus[i].second, i == 0 ? 3 : 1);  // enabled, BSP only for vCPU 0
  }
  EXPECT_EQ(p.buses, 1);
  EXPECT_EQ(p.ioapic_id, vcpus);
  EXPECT_EQ(p.ioapic_addr, layout::kIoapicAddr);
  EXPECT_EQ(p.local, 2);
  // Every legacy IRQ, COM1 and every virtio slot route to the same-numbered IOAPIC pin.
  std::vector<uint32_t> wanted = {0, 1, layout::kCom1Irq, 15};
  for (uint32_t s = 0; s < layout::kVirtioMmioSlots; ++s) wanted.push_back(layout::VirtioIrq(s));
  for (uint32_t irq : wanted) {
    auto it = p.irqs.find(static_cast<uint8_t>(irq));
    ASSERT_NE(it, p.irqs.end()) << "IRQ " << irq;
    EXPECT_EQ(it->second.first, vcpus) << "IRQ " << irq;
    EXPECT_EQ(it->second.second, irq) << "IRQ " << irq;
  }
}

INSTANTIATE_TEST_SUITE_P(Vcpus, MpTableTest, ::testing::Values(1u, 2u, 8u));

TEST(MpTableLimitsTest, RejectsZeroAndTooManyVcpus) {
  EXPECT_THAT(BuildMpTable(0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildMpTable(layout::kMaxVcpus + 1), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace skiff::gen2::boot
