// The command line: the virtio_mmio.device= syntax from the layout's numbers, appended
// per slot, limits and refusals.

#include "sandbox/gen2/vmm/cmdline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::StatusIs;

TEST(CmdlineTest, VirtioMmioDeviceArg) {
  EXPECT_EQ(VirtioMmioDeviceArg(0), "virtio_mmio.device=4K@0xd0000000:5");
  EXPECT_EQ(VirtioMmioDeviceArg(3), "virtio_mmio.device=4K@0xd0003000:8");
}

TEST(CmdlineTest, AppendsOnePerSlot) {
  const uint32_t slots[] = {layout::kSlotBlock, layout::kSlotControl};
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string line, BuildCmdline("console=ttyS0 reboot=k", slots, 4096));
  EXPECT_EQ(line,
            "console=ttyS0 reboot=k virtio_mmio.device=4K@0xd0000000:5 "
            "virtio_mmio.device=4K@0xd0002000:7");
  SKIFF_ASSERT_OK_AND_ASSIGN(line, BuildCmdline("", slots, 4096));
  EXPECT_EQ(line.front(), 'v');
  SKIFF_ASSERT_OK_AND_ASSIGN(line, BuildCmdline("quiet", {}, 4096));
  EXPECT_EQ(line, "quiet");
}

TEST(CmdlineTest, Refusals) {
  const uint32_t twice[] = {1, 1};
  EXPECT_THAT(BuildCmdline("", twice, 4096), StatusIs(absl::StatusCode::kInvalidArgument));
  const uint32_t bad[] = {layout::kVirtioMmioSlots};
  EXPECT_THAT(BuildCmdline("", bad, 4096), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildCmdline(std::string("a\0b", 3), {}, 4096),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // The limit counts the terminating NUL.
  SKIFF_EXPECT_OK(BuildCmdline(std::string(9, 'x'), {}, 10));
  EXPECT_THAT(BuildCmdline(std::string(10, 'x'), {}, 10),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace skiff::gen2
