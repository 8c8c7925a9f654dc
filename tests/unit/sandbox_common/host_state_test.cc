// HostState snapshots and their diff (privileged). The binary works in private mount and
// network namespaces; the cgroup it creates lives on the host and is removed on exit.

#include "tests/support/host_state.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/net.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/sandbox_common/temp_dir.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class HostStateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(unshare(CLONE_NEWNS | CLONE_NEWNET), 0) << strerror(errno);
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
  }
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    opts_.cgroup_prefixes = {absl::StrCat("skiff-hs-", getpid())};
    opts_.netns_dir = tmp_.path() + "/netns";
    ASSERT_EQ(mkdir(opts_.netns_dir.c_str(), 0755), 0);
    SKIFF_ASSERT_OK_AND_ASSIGN(roots_, CgroupRoots::Detect());
  }
  TempDir tmp_;
  HostStateOptions opts_;
  CgroupRoots roots_;
};

TEST_F(HostStateTest, DiffNamesEveryLeakAndEveryRemoval) {
  SKIFF_ASSERT_OK_AND_ASSIGN(HostState before, HostState::Capture(opts_));
  EXPECT_EQ(before.links.count("lo"), 1u);
  SKIFF_ASSERT_OK_AND_ASSIGN(HostState same, HostState::Capture(opts_));
  EXPECT_EQ(DiffHostState(before, same), "");

  const std::string mnt = tmp_.path() + "/mnt";
  const std::string cg = roots_.memory + "/" + opts_.cgroup_prefixes[0];
  const std::string veth = absl::StrCat("skhs", getpid() % 100000);
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  absl::Cleanup undo = [&] {
    umount2(mnt.c_str(), MNT_DETACH);
    rmdir((cg + "/x").c_str());
    rmdir(cg.c_str());
    DeleteLink(veth).IgnoreError();
  };
  ASSERT_EQ(mount("skiff-hs", mnt.c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((cg + "/x").c_str(), 0755), 0);
  SKIFF_ASSERT_OK(WriteNewFile(opts_.netns_dir + "/i-1", ""));
  // Both ends in this (private) netns: the peer "eth0" shows up too.
  SKIFF_ASSERT_OK(CreateVethPair(
      {.host_ifname = veth, .host_ip = "10.200.1.0", .instance_ip = "10.200.1.1"}, getpid()));

  SKIFF_ASSERT_OK_AND_ASSIGN(HostState after, HostState::Capture(opts_));
  const std::string diff = DiffHostState(before, after);
  EXPECT_THAT(diff, HasSubstr("leaked mount: " + mnt + " tmpfs skiff-hs\n"));
  EXPECT_THAT(diff, HasSubstr("leaked cgroup: " + cg + "\n"));
  EXPECT_THAT(diff, HasSubstr("leaked cgroup: " + cg + "/x\n"));
  EXPECT_THAT(diff, HasSubstr("leaked netns: i-1\n"));
  EXPECT_THAT(diff, HasSubstr("leaked link: " + veth + "\n"));
  EXPECT_THAT(diff, HasSubstr("leaked link: eth0\n"));
  EXPECT_THAT(diff, Not(HasSubstr("removed")));
  // The reverse direction reports removals.
  EXPECT_THAT(DiffHostState(after, before), HasSubstr("removed mount: " + mnt));

  // A second mount stacked on the same point counts separately.
  ASSERT_EQ(mount("skiff-hs", mnt.c_str(), "tmpfs", 0, "size=64k"), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(HostState stacked, HostState::Capture(opts_));
  EXPECT_EQ(DiffHostState(after, stacked), "leaked mount: " + mnt + " tmpfs skiff-hs\n");
  ASSERT_EQ(umount2(mnt.c_str(), 0), 0);

  std::move(undo).Invoke();
  unlink((opts_.netns_dir + "/i-1").c_str());
  SKIFF_ASSERT_OK_AND_ASSIGN(HostState clean, HostState::Capture(opts_));
  EXPECT_EQ(DiffHostState(before, clean), "");
}

}  // namespace
}  // namespace skiff::testing
