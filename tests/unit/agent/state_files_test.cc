// State-dir file helpers; RemoveStateDir must never delete through a mount left below.

#include "agent/instances/state_files.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include "absl/cleanup/cleanup.h"
#include "skiff/v1/agent.pb.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

TEST(StateFilesTest, ProtoRoundTripAndErrorsNameThePath) {
  testing::TempDir tmp;
  v1::Instance inst;
  inst.set_id("a");
  inst.set_ip("10.0.0.3");
  SKIFF_ASSERT_OK(WriteProtoFile(tmp.path() + "/instance.pb", inst));
  EXPECT_FALSE(Exists(tmp.path() + "/instance.pb.tmp"));
  v1::Instance back;
  SKIFF_ASSERT_OK(ReadProtoFile(tmp.path() + "/instance.pb", &back));
  EXPECT_EQ(back.ip(), "10.0.0.3");
  EXPECT_THAT(ReadProtoFile(tmp.path() + "/missing.pb", &back),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/missing.pb")));
  std::ofstream(tmp.path() + "/junk.pb") << "\xff\xff\xff garbage";
  EXPECT_THAT(ReadProtoFile(tmp.path() + "/junk.pb", &back),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("junk.pb")));
}

TEST(StateFilesTest, RemoveStateDirRemovesTreeButNotSymlinkTargets) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/inst";
  const std::string outside = tmp.path() + "/outside";
  std::filesystem::create_directories(dir + "/a/b");
  std::filesystem::create_directories(outside);
  std::ofstream(dir + "/a/b/f") << "x";
  std::ofstream(outside + "/keep") << "x";
  std::filesystem::create_directory_symlink(outside, dir + "/link");
  SKIFF_ASSERT_OK(RemoveStateDir(dir));
  EXPECT_FALSE(Exists(dir));
  EXPECT_TRUE(Exists(outside + "/keep"));
  SKIFF_EXPECT_OK(RemoveStateDir(dir));  // already gone: OK
}

TEST(StateFilesTest, RemoveStateDirRefusesToCrossAMount) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/inst";
  const std::string mnt = dir + "/rootfs";
  std::filesystem::create_directories(mnt);
  ASSERT_EQ(mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  absl::Cleanup unmount = [&] { umount2(mnt.c_str(), MNT_DETACH); };
  std::ofstream(mnt + "/precious") << "x";
  EXPECT_THAT(RemoveStateDir(dir), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(mnt)));
  EXPECT_TRUE(Exists(mnt + "/precious"));
}

}  // namespace
}  // namespace skiff::agent
