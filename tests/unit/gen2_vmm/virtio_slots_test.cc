// ParseMac, and the device slots' host-side errors surfacing from the factories.

#include "sandbox/gen2/vmm/virtio_slots.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseMacTest, ParsesAndRefuses) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto mac, ParseMac("52:54:00:Ab:cD:0f"));
  EXPECT_EQ(mac, (std::array<uint8_t, 6>{0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f}));
  for (const char* bad : {"", "52:54:00:ab:cd", "52:54:00:ab:cd:0g", "52-54-00-ab-cd-0f",
                          "52:54:00:ab:cd:0f:", "5:254:00:ab:cd:0f"}) {
    EXPECT_THAT(ParseMac(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(VirtioSlotsTest, SlotsAndHostErrors) {
  std::vector<uint8_t> ram(1 << 20);
  const GuestMemory memory = GuestMemory::FromBuffer(0, ram);
  const VirtioSlotConfig disk = DiskSlot(layout::kSlotScratch, "/nonexistent/disk.img", false, "d");
  EXPECT_EQ(disk.slot, layout::kSlotScratch);
  EXPECT_THAT(disk.create(nullptr, memory).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/disk.img")));
  const VirtioSlotConfig control = ControlSlot("/nonexistent/control.sock");
  EXPECT_EQ(control.slot, layout::kSlotControl);
  EXPECT_THAT(control.create(nullptr, memory).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/control.sock")));
  EXPECT_EQ(NetSlot("tap0", {}).slot, layout::kSlotNet);
}

}  // namespace
}  // namespace skiff::gen2
