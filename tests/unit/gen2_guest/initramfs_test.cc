// The initramfs builder and its newc cpio writer, checked by Debian's cpio: the listing
// (types, modes, device numbers) and an extraction compared byte for byte.

#include "sandbox/gen2/guest/initramfs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "sandbox/gen2/guest/cpio_newc.h"
#include "tests/support/shell.h"

namespace skiff::gen2::guest {
namespace {

using ::skiff::testing::Shell;

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

class InitramfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-initramfs-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { Shell("rm -rf '" + dir_ + "'"); }
  std::string dir_;
};

TEST_F(InitramfsTest, CpioListsAndExtractsSkiffInitAndTheModulesInOrder) {
  ASSERT_EQ(mkdir((dir_ + "/mods").c_str(), 0755), 0);
  // Names of several lengths exercise the header and name padding.
  WriteAll(dir_ + "/mods/virtio.ko", std::string("\x7f"
                                                 "ELF module one",
                                                 15));
  WriteAll(dir_ + "/mods/virtio_mmio.ko", std::string(4097, 'm'));
  WriteAll(dir_ + "/mods/a.ko", "");
  WriteAll(dir_ + "/mods/list", "virtio.ko\nvirtio_mmio.ko\n\na.ko\n");
  InitramfsSpec spec{SKIFF_INIT_PATH, dir_ + "/mods", dir_ + "/mods/list"};
  const std::string out = dir_ + "/initramfs.cpio";
  ASSERT_TRUE(BuildInitramfs(spec, out).ok());

  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_size % 512, 0);
  std::string listing = Shell("cpio -itv --quiet < '" + out + "'");
  EXPECT_THAT(listing, HasSubstr("-rwxr-xr-x"));
  EXPECT_THAT(listing, ::testing::ContainsRegex("crw------- .* 5, +1 .* dev/console"));
  for (const char* name :
       {" init\n", " dev\n", " proc\n", " sys\n", " run\n", " skiff\n", " modules/virtio.ko\n",
        " modules/virtio_mmio.ko\n", " modules/a.ko\n", " modules/modules.list\n"}) {
    EXPECT_THAT(listing, HasSubstr(name));
  }

  const std::string x = dir_ + "/x";
  ASSERT_EQ(mkdir(x.c_str(), 0755), 0);
  Shell("cd '" + x + "' && cpio -idm --quiet --no-absolute-filenames < '" + out + "'");
  EXPECT_EQ(ReadAll(x + "/init"), ReadAll(SKIFF_INIT_PATH));
  ASSERT_EQ(stat((x + "/init").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(ReadAll(x + "/modules/virtio.ko"), ReadAll(dir_ + "/mods/virtio.ko"));
  EXPECT_EQ(ReadAll(x + "/modules/virtio_mmio.ko"), std::string(4097, 'm'));
  EXPECT_EQ(ReadAll(x + "/modules/a.ko"), "");
  // Blank lines dropped, order kept.
  EXPECT_EQ(ReadAll(x + "/modules/modules.list"), "virtio.ko\nvirtio_mmio.ko\na.ko\n");
  ASSERT_EQ(lstat((x + "/dev/console").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 5u);
  EXPECT_EQ(minor(st.st_rdev), 1u);
}

TEST_F(InitramfsTest, WithoutModulesHoldsOnlyInitAndMountPoints) {
  const std::string out = dir_ + "/initramfs.cpio";
  ASSERT_TRUE(BuildInitramfs({SKIFF_INIT_PATH, "", ""}, out).ok());
  std::string names = Shell("cpio -it --quiet < '" + out + "' | sort | tr '\\n' ' '");
  EXPECT_EQ(names, "dev dev/console init proc run skiff sys ");
}

TEST_F(InitramfsTest, BadModuleListsAreRefusedAndLeaveNothing) {
  ASSERT_EQ(mkdir((dir_ + "/mods").c_str(), 0755), 0);
  const std::string out = dir_ + "/initramfs.cpio";
  WriteAll(dir_ + "/mods/list", "../../etc/shadow\n");
  absl::Status s = BuildInitramfs({SKIFF_INIT_PATH, dir_ + "/mods", dir_ + "/mods/list"}, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("bad entry \"../../etc/shadow\""));
  WriteAll(dir_ + "/mods/list", "missing.ko\n");
  s = BuildInitramfs({SKIFF_INIT_PATH, dir_ + "/mods", dir_ + "/mods/list"}, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("missing.ko"));
  s = BuildInitramfs({dir_ + "/no-init", "", ""}, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  // No output and no temp file left behind.
  EXPECT_EQ(Shell("ls -A '" + dir_ + "'"), "mods\n");
}

TEST(CpioNewcWriterTest, HeaderFieldsAndPadding) {
  CpioNewcWriter w;
  w.AddFile("ab", 0644, "xyz");
  std::string a = w.Finish();
  // 110-byte header + "ab\0" = 113 → padded to 116; 3 data bytes → 120.
  ASSERT_GE(a.size(), 120u);
  EXPECT_EQ(a.substr(0, 6), "070701");
  EXPECT_EQ(a.substr(6 + 8, 8), "000081A4");       // c_mode: S_IFREG | 0644
  EXPECT_EQ(a.substr(6 + 6 * 8, 8), "00000003");   // c_filesize
  EXPECT_EQ(a.substr(6 + 11 * 8, 8), "00000003");  // c_namesize with the NUL
  EXPECT_EQ(a.substr(110, 4), std::string("ab\0\0", 4));
  EXPECT_EQ(a.substr(116, 4), std::string("xyz\0", 4));
  EXPECT_EQ(a.substr(120, 6), "070701");
  EXPECT_EQ(a.substr(120 + 110, 11), "TRAILER!!!" + std::string(1, '\0'));
  EXPECT_EQ(a.size() % 512, 0u);
}

}  // namespace
}  // namespace skiff::gen2::guest
