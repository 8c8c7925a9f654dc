// skiff-init's module step, the parts that run on any host: command-line parameters for
// a module (modprobe's job in a normal system), and the module list's handling — no list
// is nothing to do, bad entries and missing files fail naming them, and a file the kernel
// refuses fails naming finit_module (this host cannot load modules at all).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "sandbox/gen2/guest/init/modules.h"

namespace skiff::gen2::init {
namespace {

using ::testing::HasSubstr;

TEST(ModuleParamsTest, PicksThisModulesWordsOnly) {
  const char* cmdline =
      "console=ttyS0 reboot=k virtio_mmio.device=4K@0xd0000000:5 "
      "virtio-mmio.device=4K@0xd0001000:6 virtio_blk.queue_depth=64 "
      "virtio_mmio.x=\"a b\" virtio_mmiox.y=1 virtio_mmio.=bad panic=-1\n";
  EXPECT_EQ(ModuleParams(cmdline, "virtio_mmio"),
            "device=4K@0xd0000000:5 device=4K@0xd0001000:6 x=\"a b\"");
  EXPECT_EQ(ModuleParams(cmdline, "virtio-blk"), "queue_depth=64");
  EXPECT_EQ(ModuleParams(cmdline, "erofs"), "");
  EXPECT_EQ(ModuleParams("", "erofs"), "");
  // "a=b.c" is a plain parameter, not module a's.
  EXPECT_EQ(ModuleParams("root=x.y erofs.z=1", "root"), "");
}

class LoadModulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-init-modules-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf '" + dir_ + "'").c_str()), 0); }
  void Write(const std::string& name, const std::string& data) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << data;
  }
  std::string dir_;
};

TEST_F(LoadModulesTest, NoListMeansEverythingBuiltIn) {
  EXPECT_TRUE(LoadModules(dir_ + "/modules.list").ok());
}

TEST_F(LoadModulesTest, BadEntryIsEinvalNamingIt) {
  Write("modules.list", "../escape.ko\n");
  StepResult r = LoadModules(dir_ + "/modules.list");
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_THAT(r.detail, HasSubstr("bad entry ../escape.ko"));
  Write("modules.list", "notamodule.txt\n");
  EXPECT_EQ(LoadModules(dir_ + "/modules.list").err, EINVAL);
}

TEST_F(LoadModulesTest, MissingModuleIsEnoentNamingIt) {
  Write("modules.list", "\nmissing.ko\n");
  StepResult r = LoadModules(dir_ + "/modules.list");
  EXPECT_EQ(r.err, ENOENT);
  EXPECT_EQ(r.detail, "open(" + dir_ + "/missing.ko)");
}

TEST_F(LoadModulesTest, RefusedModuleNamesFinitModule) {
  Write("modules.list", "junk.ko\n");
  Write("junk.ko", "not an ELF module");
  StepResult r = LoadModules(dir_ + "/modules.list");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.detail, "finit_module(" + dir_ + "/junk.ko)");
}

}  // namespace
}  // namespace skiff::gen2::init
