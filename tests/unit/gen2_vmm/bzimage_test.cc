// The bzImage parser over crafted files: a valid header parses to the documented load
// address and entry; every check in the boot-protocol validation rejects its bad input
// with INVALID_ARGUMENT and a message naming the field.

#include "sandbox/gen2/vmm/boot/bzimage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/integration/gen2/tiny_guest.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::boot {
namespace {

using ::skiff::gen2::testing::TinyBzImage;
using ::skiff::gen2::testing::TinyCode;
using ::skiff::gen2::testing::TinyProgram;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

constexpr uint64_t kRamEnd = 64ull << 20;

template <typename T>
void Poke(std::vector<uint8_t>& f, size_t off, T v) {
  std::memcpy(f.data() + off, &v, sizeof(T));
}

TEST(BzImageTest, ValidImageParses) {
  const std::vector<uint8_t> file = TinyBzImage(TinyProgram::kPrintCmdline);
  ASSERT_TRUE(LooksLikeBzImage(file));
  SKIFF_ASSERT_OK_AND_ASSIGN(BzImage image, ParseBzImage(file, kRamEnd));
  EXPECT_EQ(image.load_addr, layout::kKernelLoadAddr);
  EXPECT_EQ(image.entry, layout::kKernelLoadAddr + 0x200);
  EXPECT_EQ(image.header.version, 0x020f);
  EXPECT_EQ(image.header_size, 0x26c - 0x1f1);
  // The protected-mode part starts after (setup_sects + 1) sectors.
  EXPECT_EQ(image.protected_mode.data(), file.data() + 1024);
  EXPECT_EQ(image.protected_mode.size(), file.size() - 1024);
  // init_size (0x10000) is larger than the protected-mode part: it bounds the kernel.
  EXPECT_EQ(image.memory_end, layout::kKernelLoadAddr + 0x10000);
  // The code sits at the 64-bit entry.
  const std::vector<uint8_t> code = TinyCode(TinyProgram::kPrintCmdline);
  EXPECT_EQ(0, std::memcmp(image.protected_mode.data() + 0x200, code.data(), code.size()));
}

TEST(BzImageTest, LoadCopiesTheProtectedModePart) {
  const std::vector<uint8_t> file = TinyBzImage(TinyProgram::kSpin);
  std::vector<uint8_t> ram(4 << 20);
  GuestMemory memory = GuestMemory::FromBuffer(0, ram);
  SKIFF_ASSERT_OK_AND_ASSIGN(BzImage image, ParseBzImage(file, ram.size()));
  SKIFF_ASSERT_OK(LoadBzImage(image, memory));
  EXPECT_EQ(ram[layout::kKernelLoadAddr + 0x200], 0xeb);
  EXPECT_EQ(ram[layout::kKernelLoadAddr + 0x201], 0xfe);
}

TEST(BzImageTest, NonRelocatableLoadsAtPrefAddress) {
  std::vector<uint8_t> file = TinyBzImage(TinyProgram::kSpin);
  Poke<uint8_t>(file, 0x234, 0);
  Poke<uint64_t>(file, 0x258, 0x1000000);
  SKIFF_ASSERT_OK_AND_ASSIGN(BzImage image, ParseBzImage(file, kRamEnd));
  EXPECT_EQ(image.load_addr, 0x1000000u);
  EXPECT_EQ(image.entry, 0x1000200u);
  // Not relocatable and a pref_address below 1 MiB: refused.
  Poke<uint64_t>(file, 0x258, 0x8000);
  EXPECT_THAT(ParseBzImage(file, kRamEnd),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pref_address")));
}

TEST(BzImageTest, RelocatableKernelReservesInitSizeFromPrefAddress) {
  std::vector<uint8_t> file = TinyBzImage(TinyProgram::kSpin);
  Poke<uint64_t>(file, 0x258, 0x1000000);  // LOAD_PHYSICAL_ADDR, 16 MiB
  Poke<uint32_t>(file, 0x260, 0x2000000);  // init_size 32 MiB
  SKIFF_ASSERT_OK_AND_ASSIGN(BzImage image, ParseBzImage(file, kRamEnd));
  EXPECT_EQ(image.load_addr, layout::kKernelLoadAddr);  // still loaded at 1 MiB
  EXPECT_EQ(image.memory_end, 0x3000000u);              // but runs from 16 MiB
  // 32 MiB from 16 MiB does not fit in 40 MiB of RAM.
  EXPECT_THAT(ParseBzImage(file, 40ull << 20),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("init_size")));
}

struct BadCase {
  const char* name;
  size_t offset;
  uint64_t value;
  size_t width;
  const char* message;
};

class BzImageBadHeaderTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BzImageBadHeaderTest, Rejected) {
  const BadCase& c = GetParam();
  std::vector<uint8_t> file = TinyBzImage(TinyProgram::kPrintCmdline);
  std::memcpy(file.data() + c.offset, &c.value, c.width);
  EXPECT_THAT(ParseBzImage(file, kRamEnd),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BzImageBadHeaderTest,
    ::testing::Values(BadCase{"BootFlag", 0x1fe, 0x1234, 2, "boot flag"},
                      BadCase{"Magic", 0x202, 0x53726449, 4, "header magic"},
                      BadCase{"OldProtocol", 0x206, 0x020b, 2, "boot protocol 2.11"},
                      BadCase{"No64BitEntry", 0x236, 0, 2, "XLF_KERNEL_64"},
                      BadCase{"NotLoadedHigh", 0x211, 0, 1, "LOADED_HIGH"},
                      BadCase{"HugeSetupSects", 0x1f1, 0xff, 1, "setup_sects 255"},
                      BadCase{"AlignmentNotPowerOfTwo", 0x230, 0x300000, 4, "kernel_alignment"},
                      BadCase{"AlignmentZero", 0x230, 0, 4, "kernel_alignment"},
                      BadCase{"InitSizeTooLarge", 0x260, 0xfff00000, 4, "init_size"},
                      BadCase{"ShortHeader", 0x201, 0x10, 1, "shorter than protocol 2.12"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(BzImageTest, TruncatedFilesRejected) {
  const std::vector<uint8_t> file = TinyBzImage(TinyProgram::kPrintCmdline);
  // Too short for the header; cut inside the setup sectors; cut right after them (no
  // 64-bit entry).
  for (size_t len : {size_t{0}, size_t{0x200}, size_t{0x300}, size_t{1024}, size_t{1024 + 0x100}}) {
    std::vector<uint8_t> cut(file.begin(), file.begin() + static_cast<long>(len));
    EXPECT_THAT(ParseBzImage(cut, kRamEnd), StatusIs(absl::StatusCode::kInvalidArgument))
        << "length " << len;
  }
}

TEST(BzImageTest, ZeroSetupSectsMeansFour) {
  std::vector<uint8_t> file = TinyBzImage(TinyProgram::kSpin);
  Poke<uint8_t>(file, 0x1f1, 0);
  // (4 + 1) * 512 = 2560 is past this file's end.
  EXPECT_THAT(ParseBzImage(file, kRamEnd),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("setup_sects 4")));
}

TEST(BzImageTest, NotABzImage) {
  std::vector<uint8_t> zeros(4096);
  EXPECT_FALSE(LooksLikeBzImage(zeros));
  EXPECT_THAT(ParseBzImage(zeros, kRamEnd), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace skiff::gen2::boot
