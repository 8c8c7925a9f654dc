// The zero page and e820 map: the setup header copied to 0x1f1 with the loader's fields,
// the e820 map for small and large guests, the initramfs placement rules.

#include "sandbox/gen2/vmm/boot/zero_page.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "sandbox/gen2/vmm/boot/bzimage.h"
#include "sandbox/gen2/vmm/boot/initramfs.h"
#include "sandbox/gen2/vmm/layout.h"
#include "tests/integration/gen2/tiny_guest.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::boot {
namespace {

using ::skiff::testing::StatusIs;

template <typename T>
T Peek(const std::array<uint8_t, kZeroPageSize>& page, size_t off) {
  T v;
  std::memcpy(&v, page.data() + off, sizeof(T));
  return v;
}

TEST(E820Test, SmallGuest) {
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory, GuestMemory::Create(64ull << 20));
  const std::vector<E820Entry> map = BuildE820Map(memory);
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map[0].addr, 0u);
  EXPECT_EQ(map[0].size, layout::kEbdaStart);
  EXPECT_EQ(map[0].type, kE820Ram);
  EXPECT_EQ(map[1].addr, layout::kEbdaStart);
  EXPECT_EQ(map[1].addr + map[1].size, layout::kHighMemStart);
  EXPECT_EQ(map[1].type, kE820Reserved);
  EXPECT_EQ(map[2].addr, layout::kHighMemStart);
  EXPECT_EQ(map[2].addr + map[2].size, 64ull << 20);
  EXPECT_EQ(map[2].type, kE820Ram);
}

TEST(E820Test, GuestLargerThanTheGapGetsRamAbove4GiB) {
  const uint64_t size = layout::kMmioGapStart + (256ull << 20);
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory, GuestMemory::Create(size));
  const std::vector<E820Entry> map = BuildE820Map(memory);
  ASSERT_EQ(map.size(), 4u);
  EXPECT_EQ(map[2].addr + map[2].size, layout::kMmioGapStart);
  EXPECT_EQ(map[3].addr, layout::kMmioGapEnd);
  EXPECT_EQ(map[3].size, 256ull << 20);
  EXPECT_EQ(map[3].type, kE820Ram);
  uint64_t ram = 0;
  for (const E820Entry& e : map) ram += e.type == kE820Ram ? e.size : 0;
  EXPECT_EQ(ram, size - (layout::kHighMemStart - layout::kEbdaStart));
}

TEST(ZeroPageTest, CopiesTheHeaderAndFillsLoaderFields) {
  const std::vector<uint8_t> file = testing::TinyBzImage(testing::TinyProgram::kPrintCmdline);
  SKIFF_ASSERT_OK_AND_ASSIGN(BzImage image, ParseBzImage(file, 64ull << 20));
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory, GuestMemory::Create(64ull << 20));
  ZeroPageParams params;
  params.header = image.header;
  params.header_size = image.header_size;
  params.cmdline_addr = layout::kCmdlineAddr;
  params.initrd_addr = 0x3f00000;
  params.initrd_size = 0x12345;
  params.e820 = BuildE820Map(memory);
  SKIFF_ASSERT_OK_AND_ASSIGN(auto page, BuildZeroPage(params));

  // The header bytes the kernel supplied are there unchanged (except the loader's fields).
  EXPECT_EQ(Peek<uint16_t>(page, 0x1fe), kBootFlag);
  EXPECT_EQ(Peek<uint32_t>(page, 0x202), kHeaderMagic);
  EXPECT_EQ(Peek<uint16_t>(page, 0x206), 0x020f);
  EXPECT_EQ(Peek<uint32_t>(page, 0x230), 0x200000u);  // kernel_alignment
  EXPECT_EQ(Peek<uint32_t>(page, 0x260), 0x10000u);   // init_size
  // The loader's fields.
  EXPECT_EQ(page[0x210], 0xff);  // type_of_loader
  EXPECT_EQ(Peek<uint32_t>(page, 0x228), layout::kCmdlineAddr);
  EXPECT_EQ(Peek<uint32_t>(page, 0x218), 0x3f00000u);
  EXPECT_EQ(Peek<uint32_t>(page, 0x21c), 0x12345u);
  EXPECT_EQ(page[kSentinelOffset], 0);  // a bootloader that fills the header zeroes it
  // The e820 map.
  ASSERT_EQ(page[kE820EntriesOffset], 3);
  E820Entry last;
  std::memcpy(&last, page.data() + kE820TableOffset + 2 * sizeof(E820Entry), sizeof(last));
  EXPECT_EQ(last.addr, layout::kHighMemStart);
  EXPECT_EQ(last.addr + last.size, 64ull << 20);
  // Nothing else is set: the bytes before the header are zero (no screen_info etc.).
  for (size_t i = 0; i < kE820EntriesOffset; ++i) ASSERT_EQ(page[i], 0) << "offset " << i;
}

TEST(ZeroPageTest, ElfKernelsGetASynthesizedHeader) {
  ZeroPageParams params;
  params.header = SynthesizedElfHeader();
  params.cmdline_addr = layout::kCmdlineAddr;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto page, BuildZeroPage(params));
  EXPECT_EQ(Peek<uint16_t>(page, 0x1fe), kBootFlag);
  EXPECT_EQ(Peek<uint32_t>(page, 0x202), kHeaderMagic);
  EXPECT_EQ(page[0x210], 0xff);
  EXPECT_EQ(Peek<uint32_t>(page, 0x228), layout::kCmdlineAddr);
  EXPECT_EQ(Peek<uint32_t>(page, 0x218), 0u);  // no initramfs
}

TEST(ZeroPageTest, RejectsTooManyE820EntriesAndHighAddresses) {
  ZeroPageParams params;
  params.e820.resize(kE820MaxEntries + 1);
  EXPECT_THAT(BuildZeroPage(params), StatusIs(absl::StatusCode::kInvalidArgument));
  params.e820.clear();
  params.initrd_addr = 1ull << 32;
  EXPECT_THAT(BuildZeroPage(params), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(InitramfsTest, PlacedAtTheTopOfLowRamPageAligned) {
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory, GuestMemory::Create(64ull << 20));
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t addr, PlaceInitramfs(10000, 0x200000, 0x7fffffff, memory));
  EXPECT_EQ(addr % layout::kPageSize, 0u);
  EXPECT_LE(addr + 10000, 64ull << 20);
  EXPECT_GT(addr + 10000 + layout::kPageSize, 64ull << 20);  // as high as it goes
}

TEST(InitramfsTest, HonoursInitrdAddrMax) {
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory, GuestMemory::Create(64ull << 20));
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t addr, PlaceInitramfs(8192, 0x200000, 0x1ffffff, memory));
  EXPECT_LE(addr + 8192, 0x2000000u);
  EXPECT_EQ(addr, 0x2000000u - 8192);
}

TEST(InitramfsTest, BelowTheMmioGapForLargeGuests) {
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory,
                             GuestMemory::Create(layout::kMmioGapStart + (64ull << 20)));
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t addr, PlaceInitramfs(4096, 0x200000, 0xffffffff, memory));
  EXPECT_EQ(addr, layout::kMmioGapStart - 4096);
}

TEST(InitramfsTest, DoesNotOverlapTheKernel) {
  SKIFF_ASSERT_OK_AND_ASSIGN(GuestMemory memory, GuestMemory::Create(16ull << 20));
  EXPECT_THAT(PlaceInitramfs(15ull << 20, 2ull << 20, 0x7fffffff, memory),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(PlaceInitramfs(0, 2ull << 20, 0x7fffffff, memory),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace skiff::gen2::boot
