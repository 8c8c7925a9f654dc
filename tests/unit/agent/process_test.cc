#include "agent/instances/process.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/instances/image_user.h"
#include "agent/instances/spec_defaults.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::TempDir;

void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << content;
}

class ProcessTest : public ::testing::Test {
 protected:
  ProcessTest() {
    layer_ = tmp_.path() + "/l0";
    WriteFile(layer_ + "/etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\n"
              "# comment\n"
              "app:x:1000:1001:app:/home/app:/bin/sh\n"
              "broken:line\n"
              "web:x:33:33::/var/www:/bin/false\n");
    WriteFile(layer_ + "/etc/group",
              "root:x:0:\n"
              "app:x:1001:\n"
              "video:x:44:app,web\n"
              "audio:x:29:web\n"
              "staff:x:50:app\n");
    spec_.set_image("img");
    spec_.set_memory_bytes(64 << 20);
    ApplySpecDefaults(&spec_);
    config_.entrypoint = {"/bin/ep", "--flag"};
    config_.cmd = {"serve", "--port=1"};
    config_.env = {"PATH=/custom/bin", "LANG=C", "FOO=image"};
    config_.working_dir = "/srv";
  }

  TempDir tmp_;
  std::string layer_;
  v1::InstanceSpec spec_;
  images::ImageConfig config_;
};

TEST_F(ProcessTest, ImageDefaults) {
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.argv, ElementsAre("/bin/ep", "--flag", "serve", "--port=1"));
  EXPECT_THAT(p.env, ElementsAre("PATH=/custom/bin", "LANG=C", "FOO=image", "PORT=8080"));
  EXPECT_EQ(p.working_dir, "/srv");
  EXPECT_EQ(p.uid, 0u);
  EXPECT_EQ(p.gid, 0u);
}

TEST_F(ProcessTest, ArgsReplaceCmdOnly) {
  spec_.add_args("other");
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.argv, ElementsAre("/bin/ep", "--flag", "other"));
}

TEST_F(ProcessTest, CommandReplacesEntrypointAndDropsCmd) {
  spec_.add_command("/bin/sh");
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.argv, ElementsAre("/bin/sh"));
  spec_.add_args("-c");
  spec_.add_args("echo hi");
  SKIFF_ASSERT_OK_AND_ASSIGN(p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.argv, ElementsAre("/bin/sh", "-c", "echo hi"));
}

TEST_F(ProcessTest, NoEntrypointUsesCmd) {
  config_.entrypoint.clear();
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.argv, ElementsAre("serve", "--port=1"));
}

TEST_F(ProcessTest, NothingToRunNamesCommand) {
  config_.entrypoint.clear();
  config_.cmd.clear();
  EXPECT_THAT(ResolveProcess(spec_, config_, {layer_}),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("spec.command: ")));
}

TEST_F(ProcessTest, EnvOrderAndOverrides) {
  (*spec_.mutable_env())["FOO"] = "spec";
  (*spec_.mutable_env())["ZED"] = "z";
  (*spec_.mutable_env())["ALPHA"] = "a";
  spec_.set_port(9090);
  config_.env = {"LANG=C", "FOO=image", "EMPTY"};
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.env,
              ElementsAre("LANG=C", "FOO=spec", "EMPTY=", std::string("PATH=") + kDefaultPath,
                          "PORT=9090", "ALPHA=a", "ZED=z"));
}

TEST_F(ProcessTest, JobGetsTaskEnv) {
  spec_.set_kind(v1::JOB);
  spec_.set_task_index(2);
  spec_.set_task_count(5);
  spec_.set_task_attempt(1);
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_THAT(p.env, ElementsAre("PATH=/custom/bin", "LANG=C", "FOO=image", "PORT=8080",
                                 "TASK_INDEX=2", "TASK_COUNT=5", "TASK_ATTEMPT=1"));
}

TEST_F(ProcessTest, WorkingDir) {
  spec_.set_working_dir("/override");
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_EQ(p.working_dir, "/override");
  spec_.clear_working_dir();
  config_.working_dir.clear();
  SKIFF_ASSERT_OK_AND_ASSIGN(p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_EQ(p.working_dir, "/");
  config_.working_dir = "rel";
  EXPECT_THAT(ResolveProcess(spec_, config_, {layer_}),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("image config WorkingDir")));
}

TEST_F(ProcessTest, UserByNameFromImageWithSupplementaryGroups) {
  config_.user = "app";
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_EQ(p.uid, 1000u);
  EXPECT_EQ(p.gid, 1001u);
  EXPECT_THAT(p.additional_gids, ElementsAre(44u, 50u));
}

TEST_F(ProcessTest, SpecUserOverridesImageUser) {
  config_.user = "app";
  spec_.set_user("web:audio");
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedProcess p, ResolveProcess(spec_, config_, {layer_}));
  EXPECT_EQ(p.uid, 33u);
  EXPECT_EQ(p.gid, 29u);
  EXPECT_TRUE(p.additional_gids.empty());
}

TEST(ImageUserTest, NumericForms) {
  TempDir tmp;
  const std::string layer = tmp.path() + "/l";
  WriteFile(layer + "/etc/passwd", "app:x:1000:1001::/:/bin/sh\n");
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedUser u, ResolveImageUser("1000", {layer}, "spec.user"));
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1001u);  // from passwd
  SKIFF_ASSERT_OK_AND_ASSIGN(u, ResolveImageUser("4242", {layer}, "spec.user"));
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 0u);  // unknown uid → gid 0, like Docker
  SKIFF_ASSERT_OK_AND_ASSIGN(u, ResolveImageUser("5:7", {layer}, "spec.user"));
  EXPECT_EQ(u.uid, 5u);
  EXPECT_EQ(u.gid, 7u);
  // Numeric users work without any /etc/passwd at all.
  SKIFF_ASSERT_OK_AND_ASSIGN(u, ResolveImageUser("65534:65534", {tmp.path()}, "spec.user"));
  EXPECT_EQ(u.uid, 65534u);
}

TEST(ImageUserTest, UnknownNamesAreNamedErrors) {
  TempDir tmp;
  const std::string layer = tmp.path() + "/l";
  WriteFile(layer + "/etc/passwd", "app:x:1000:1001::/:/bin/sh\n");
  EXPECT_THAT(ResolveImageUser("nobody", {layer}, "spec.user"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "spec.user: user \"nobody\" not found in the image's /etc/passwd"));
  EXPECT_THAT(ResolveImageUser("app:nogroup", {layer}, "image config User"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("image config User: group \"nogroup\" not found")));
}

TEST(ImageUserTest, TopmostLayerWinsAndWhiteoutHides) {
  TempDir tmp;
  const std::string top = tmp.path() + "/top", mid = tmp.path() + "/mid", low = tmp.path() + "/low";
  WriteFile(low + "/etc/passwd", "app:x:1:1::/:/bin/sh\n");
  WriteFile(mid + "/etc/passwd", "app:x:2:2::/:/bin/sh\n");
  std::filesystem::create_directories(top + "/etc");
  SKIFF_ASSERT_OK_AND_ASSIGN(ResolvedUser u, ResolveImageUser("app", {top, mid, low}, "u"));
  EXPECT_EQ(u.uid, 2u);
  // An overlayfs whiteout in the top layer hides the file below.
  ASSERT_EQ(mknod((top + "/etc/passwd").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0);
  EXPECT_THAT(ResolveImageUser("app", {top, mid, low}, "u"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not found")));
}

TEST(ImageUserTest, SymlinkedPasswdIsNotFollowedToTheHost) {
  TempDir tmp;
  const std::string layer = tmp.path() + "/l";
  std::filesystem::create_directories(layer + "/etc");
  // /etc/passwd → the host's /etc/passwd, which has "root".
  std::filesystem::create_symlink("/etc/passwd", layer + "/etc/passwd");
  EXPECT_FALSE(ResolveImageUser("root", {layer}, "spec.user").ok());
  EXPECT_FALSE(ReadLayeredFile({layer}, "etc/passwd").ok());
  // Same through a symlinked directory.
  const std::string layer2 = tmp.path() + "/l2";
  std::filesystem::create_directories(layer2);
  std::filesystem::create_directory_symlink("/etc", layer2 + "/etc");
  EXPECT_FALSE(ReadLayeredFile({layer2}, "etc/passwd").ok());
}

}  // namespace
}  // namespace skiff::agent
