// The port-I/O and MMIO buses: dispatch by range with offsets, overlap refused, unclaimed
// port reads all-ones (PCI config mechanism #1 looks absent), unclaimed MMIO reads zero.

#include "sandbox/gen2/vmm/bus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::StatusIs;

class RecordingDevice : public BusDevice {
 public:
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    reads.push_back({offset, data.size()});
    for (auto& b : data) b = 0x5a;
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    writes.push_back({offset, data.size()});
  }
  std::vector<std::pair<uint64_t, size_t>> reads, writes;
};

TEST(BusTest, DispatchesWithOffsets) {
  Bus bus(Bus::Kind::kPio);
  RecordingDevice a, b;
  SKIFF_ASSERT_OK(bus.Register(0x3f8, 8, &a));
  SKIFF_ASSERT_OK(bus.Register(0x60, 5, &b));
  uint8_t byte = 0;
  bus.Read(0x3fd, std::span(&byte, 1));
  EXPECT_EQ(byte, 0x5a);
  const uint8_t out = 'x';
  bus.Write(0x64, std::span(&out, 1));
  ASSERT_EQ(a.reads.size(), 1u);
  EXPECT_EQ(a.reads[0].first, 5u);
  ASSERT_EQ(b.writes.size(), 1u);
  EXPECT_EQ(b.writes[0].first, 4u);
}

TEST(BusTest, OverlapRefused) {
  Bus bus(Bus::Kind::kMmio);
  RecordingDevice a;
  SKIFF_ASSERT_OK(bus.Register(0x1000, 0x1000, &a));
  EXPECT_THAT(bus.Register(0x1000, 1, &a), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(bus.Register(0xfff, 2, &a), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(bus.Register(0x1fff, 0x10, &a), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(bus.Register(0x0, 0x10000, &a), StatusIs(absl::StatusCode::kAlreadyExists));
  SKIFF_EXPECT_OK(bus.Register(0x2000, 0x1000, &a));  // adjacent is fine
  SKIFF_EXPECT_OK(bus.Register(0x0, 0x1000, &a));
  EXPECT_THAT(bus.Register(0x5000, 0, &a), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bus.Register(~0ull - 1, 4, &a), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bus.Register(0x9000, 4, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BusTest, UnclaimedPortsReadAllOnesAndPciLooksAbsent) {
  Bus bus(Bus::Kind::kPio);
  RecordingDevice a;
  SKIFF_ASSERT_OK(bus.Register(layout::kCom1Port, layout::kCom1PortCount, &a));
  // The PCI conf1 probe: write 0x80000000 to 0xcf8, read it back; absent returns all-ones.
  const uint32_t probe = 0x80000000;
  bus.Write(layout::kPciConfigAddressPort, std::span(reinterpret_cast<const uint8_t*>(&probe), 4));
  uint32_t value = 0;
  bus.Read(layout::kPciConfigAddressPort, std::span(reinterpret_cast<uint8_t*>(&value), 4));
  EXPECT_EQ(value, 0xffffffffu);
  bus.Read(layout::kPciConfigDataPort, std::span(reinterpret_cast<uint8_t*>(&value), 4));
  EXPECT_EQ(value, 0xffffffffu);
  EXPECT_TRUE(a.reads.empty());
  EXPECT_TRUE(a.writes.empty());
}

TEST(BusTest, UnclaimedMmioReadsZero) {
  Bus bus(Bus::Kind::kMmio);
  uint64_t value = ~0ull;
  bus.Read(layout::kVirtioMmioBase, std::span(reinterpret_cast<uint8_t*>(&value), 8));
  EXPECT_EQ(value, 0u);
}

TEST(BusTest, AccessRunningPastARangeIsUnclaimed) {
  Bus bus(Bus::Kind::kMmio);
  RecordingDevice a;
  SKIFF_ASSERT_OK(bus.Register(0x1000, 0x10, &a));
  uint32_t value = 7;
  bus.Read(0x100e, std::span(reinterpret_cast<uint8_t*>(&value), 4));
  EXPECT_EQ(value, 0u);
  EXPECT_TRUE(a.reads.empty());
  bus.Read(0x100c, std::span(reinterpret_cast<uint8_t*>(&value), 4));
  ASSERT_EQ(a.reads.size(), 1u);
  EXPECT_EQ(a.reads[0], std::make_pair(uint64_t{0xc}, size_t{4}));
}

}  // namespace
}  // namespace skiff::gen2
