// The ELF loader over crafted files: a valid image loads its segment at p_paddr with the
// .bss zeroed; every offset and size is checked against the file and guest memory.

#include "sandbox/gen2/vmm/boot/elf.h"

#include <elf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "sandbox/gen2/vmm/layout.h"
#include "tests/integration/gen2/tiny_guest.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::boot {
namespace {

using ::skiff::gen2::testing::TinyCode;
using ::skiff::gen2::testing::TinyElf;
using ::skiff::gen2::testing::TinyProgram;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

class ElfTest : public ::testing::Test {
 protected:
  Elf64_Ehdr& Ehdr() { return *reinterpret_cast<Elf64_Ehdr*>(file_.data()); }
  Elf64_Phdr& Phdr() { return *reinterpret_cast<Elf64_Phdr*>(file_.data() + sizeof(Elf64_Ehdr)); }
  absl::StatusOr<ElfImage> Parse() { return ParseElf(file_, memory_); }

  std::vector<uint8_t> file_ = TinyElf(TinyProgram::kPrintCmdline);
  std::vector<uint8_t> ram_ = std::vector<uint8_t>(4 << 20, 0xaa);
  GuestMemory memory_ = GuestMemory::FromBuffer(0, ram_);
};

TEST_F(ElfTest, ValidImageLoadsSegmentsAndZeroesBss) {
  ASSERT_TRUE(LooksLikeElf(file_));
  SKIFF_ASSERT_OK_AND_ASSIGN(ElfImage image, Parse());
  EXPECT_EQ(image.entry, layout::kKernelLoadAddr);
  ASSERT_EQ(image.segments.size(), 1u);
  const std::vector<uint8_t> code = TinyCode(TinyProgram::kPrintCmdline);
  EXPECT_EQ(image.memory_end, layout::kKernelLoadAddr + code.size() + 0x1000);
  SKIFF_ASSERT_OK(LoadElf(image, memory_));
  EXPECT_EQ(0, std::memcmp(&ram_[layout::kKernelLoadAddr], code.data(), code.size()));
  for (size_t i = code.size(); i < code.size() + 0x1000; ++i) {
    ASSERT_EQ(ram_[layout::kKernelLoadAddr + i], 0) << "bss byte " << i;
  }
  EXPECT_EQ(ram_[layout::kKernelLoadAddr + code.size() + 0x1000], 0xaa);  // untouched beyond
}

TEST_F(ElfTest, BadMagic) {
  file_[1] = 'X';
  EXPECT_FALSE(LooksLikeElf(file_));
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad magic")));
}

TEST_F(ElfTest, WrongClassMachineType) {
  file_[EI_CLASS] = ELFCLASS32;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ELFCLASS64")));
  file_ = TinyElf(TinyProgram::kSpin);
  Ehdr().e_machine = EM_AARCH64;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("e_machine")));
  file_ = TinyElf(TinyProgram::kSpin);
  Ehdr().e_type = ET_DYN;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ET_EXEC")));
}

TEST_F(ElfTest, TruncatedHeader) {
  file_.resize(40);
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too short")));
}

TEST_F(ElfTest, ProgramHeadersPastTheEnd) {
  Ehdr().e_phoff = file_.size() - 8;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("program headers")));
  file_ = TinyElf(TinyProgram::kSpin);
  Ehdr().e_phoff = ~0ull - 10;  // overflow
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("program headers")));
  file_ = TinyElf(TinyProgram::kSpin);
  Ehdr().e_phnum = 1000;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ElfTest, SegmentPastTheFile) {
  Phdr().p_filesz = file_.size();
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("past the file")));
  file_ = TinyElf(TinyProgram::kSpin);
  Phdr().p_offset = ~0ull;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("past the file")));
}

TEST_F(ElfTest, FileSizeLargerThanMemSize) {
  Phdr().p_memsz = 1;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("p_filesz")));
}

TEST_F(ElfTest, SegmentOutsideMemory) {
  Phdr().p_paddr = ram_.size() - 4;
  EXPECT_THAT(Parse(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside guest memory")));
  file_ = TinyElf(TinyProgram::kSpin);
  Phdr().p_memsz = ~0ull - 0x1000;  // paddr + memsz overflows
  EXPECT_THAT(Parse(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside guest memory")));
}

TEST_F(ElfTest, SegmentBelowOneMiB) {
  Phdr().p_paddr = 0x7000;  // over the zero page
  Ehdr().e_entry = 0x7000;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("below 1 MiB")));
}

TEST_F(ElfTest, EntryOutsideSegments) {
  Ehdr().e_entry = 0x300000;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("entry point")));
}

TEST_F(ElfTest, NoLoadSegment) {
  Phdr().p_type = PT_NOTE;
  EXPECT_THAT(Parse(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no PT_LOAD")));
}

}  // namespace
}  // namespace skiff::gen2::boot
