// gen1 sandbox, end to end with real namespaces, cgroups, veths and a busybox rootfs.
// Each test checks the host afterwards: no mount, cgroup, veth, process or dir left.

#include "sandbox/gen1/sandbox.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen1/capabilities.h"
#include "tests/integration/gen1/testbed.h"
#include "tests/support/host_state.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen1 {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class Gen1SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "gen1 sandbox tests need root (labelled privileged)";
    names_ = testbed::UniqueNames();
    testbed::BuildBusyboxRootfs(rootfs_.path());
    before_ = testbed::HostSnapshot::Take();
    SKIFF_ASSERT_OK_AND_ASSIGN(
        host_before_, ::skiff::testing::HostState::Capture(testbed::HostStateOptionsForTests()));
  }

  void TearDown() override {
    sandbox_.reset();  // kills and reaps if a test bailed out early
    EXPECT_THAT(before_.Leaks(names_, {run_.path() + "/rootfs"}), IsEmpty());
    testbed::RemoveTestCgroupParents();
    SKIFF_ASSERT_OK_AND_ASSIGN(
        ::skiff::testing::HostState after,
        ::skiff::testing::HostState::Capture(testbed::HostStateOptionsForTests()));
    EXPECT_EQ(testbed::LeakedLines(::skiff::testing::DiffHostState(host_before_, after)), "");
  }

  SandboxSpec Spec(std::vector<std::string> argv) {
    SandboxSpec spec;
    spec.instance_id = names_.id;
    spec.hostname = names_.id;
    spec.run_dir = run_.path();
    spec.lower_dirs = {rootfs_.path()};
    spec.argv = std::move(argv);
    spec.env = {"PATH=/bin", "SKIFF_TEST_MARKER=" + names_.marker};
    spec.cgroup_path = names_.cgroup_path;
    spec.limits.memory_bytes = 64 << 20;
    spec.limits.pids_max = 128;
    spec.veth.host_ifname = names_.host_veth;
    spec.veth.host_ip = names_.host_ip;
    spec.veth.instance_ip = names_.instance_ip;
    spec.veth.prefix_len = 31;
    return spec;
  }

  // Runs `script` under sh in a sandbox to completion; returns its stdout+stderr.
  std::string RunScript(const std::string& script, AppExit* exit = nullptr) {
    std::string out_path = run_.path() + "/out.txt";
    UniqueFd out(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    SandboxSpec spec = Spec({"sh", "-c", script});
    spec.stdout_fd = out.get();
    spec.stderr_fd = out.get();
    absl::StatusOr<std::unique_ptr<Gen1Sandbox>> sb = Gen1Sandbox::Start(spec);
    EXPECT_THAT(sb, ::skiff::testing::IsOk());
    if (!sb.ok()) return "";
    sandbox_ = std::move(*sb);
    absl::StatusOr<AppExit> result = sandbox_->Wait();
    EXPECT_THAT(result, ::skiff::testing::IsOk());
    if (exit != nullptr && result.ok()) *exit = *result;
    EXPECT_THAT(sandbox_->Destroy(), ::skiff::testing::IsOk());
    sandbox_.reset();
    return testbed::ReadTestFile(out_path);
  }

  testbed::InstanceNames names_;
  testbed::TempDir rootfs_{"skiff-gen1-rootfs"};
  testbed::TempDir run_{"skiff-gen1-run"};
  testbed::HostSnapshot before_;
  ::skiff::testing::HostState host_before_;
  std::unique_ptr<Gen1Sandbox> sandbox_;
};

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST_F(Gen1SandboxTest, RunsAppAndReportsItsExitCode) {
  AppExit exit;
  std::string out = RunScript("echo hello from the sandbox; exit 7", &exit);
  EXPECT_EQ(out, "hello from the sandbox\n");
  EXPECT_TRUE(exit.reported);
  ASSERT_TRUE(WIFEXITED(exit.wait_status));
  EXPECT_EQ(WEXITSTATUS(exit.wait_status), 7);
}

TEST_F(Gen1SandboxTest, SeesOnlyItsOwnProcesses) {
  // ps lists every process of the PID namespace: the init (1), sh (2) and ps itself.
  std::string out = RunScript("echo $$; ps -o pid,comm > /tmp/ps; cat /tmp/ps");
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 5u) << out;
  EXPECT_EQ(lines[0], "2") << "the app is PID 2, under the init";
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 2; i < lines.size(); ++i) {
    rows.push_back(absl::StrSplit(lines[i], ' ', absl::SkipEmpty()));
  }
  EXPECT_THAT(rows[0], ElementsAre("1", ::testing::_)) << out;
  EXPECT_THAT(rows[1], ElementsAre("2", "sh")) << out;
  EXPECT_THAT(rows[2], ElementsAre(::testing::_, "ps")) << out;
}

TEST_F(Gen1SandboxTest, HasItsHostnameAndGeneratedEtcFiles) {
  std::string out = RunScript("hostname; cat /etc/hostname; grep -c . /etc/hosts; grep " +
                              names_.instance_ip + " /etc/hosts");
  EXPECT_EQ(out,
            names_.id + "\n" + names_.id + "\n3\n" + names_.instance_ip + "\t" + names_.id + "\n");
}

TEST_F(Gen1SandboxTest, SeesOnlyItsOwnMounts) {
  std::string out = RunScript("cat /proc/self/mountinfo");
  // Not even in mount options (the overlay names its layers relatively).
  EXPECT_THAT(out, Not(HasSubstr(rootfs_.path())));
  EXPECT_THAT(out, Not(HasSubstr(run_.path())));
  EXPECT_THAT(out, Not(HasSubstr("/work")));
  std::vector<std::string> mount_points;
  for (const std::string& line : Lines(out)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    ASSERT_GE(f.size(), 5u);
    mount_points.push_back(f[4]);
  }
  EXPECT_EQ(mount_points.front(), "/");
  EXPECT_THAT(mount_points, Contains("/proc"));
  EXPECT_THAT(mount_points, Contains("/dev"));
  EXPECT_THAT(mount_points, Contains("/dev/pts"));
  EXPECT_THAT(mount_points, Contains("/sys"));
  // Nothing but the instance's own mounts (root, /dev*, /proc + masks, /sys).
  for (const std::string& mp : mount_points) {
    EXPECT_TRUE(mp == "/" || mp.rfind("/proc", 0) == 0 || mp.rfind("/dev", 0) == 0 ||
                mp.rfind("/sys", 0) == 0)
        << mp;
  }
}

TEST_F(Gen1SandboxTest, DevProcAndSysAreMinimal) {
  std::string out = RunScript(
      "ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && echo null-ok; "
      "head -c 4 /dev/zero | wc -c; "
      "touch /sys/x 2>/dev/null || echo sys-ro; "
      "cat /proc/timer_list | wc -c; "
      "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null || echo proc-sys-ro");
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 6u) << out;
  EXPECT_EQ(lines[0], "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
  EXPECT_EQ(lines[1], "null-ok");
  EXPECT_EQ(lines[2], "4");
  EXPECT_EQ(lines[3], "sys-ro");
  EXPECT_EQ(lines[4], "0") << "/proc/timer_list is masked by /dev/null";
  EXPECT_EQ(lines[5], "proc-sys-ro");
}

TEST_F(Gen1SandboxTest, SeesOnlyLoopbackAndEth0) {
  std::string out = RunScript(
      "ls /sys/class/net | tr '\\n' ' '; echo; ip -4 addr show eth0 | "
      "grep -o 'inet [0-9./]*'; ip route | grep default");
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0], "eth0 lo ");
  EXPECT_EQ(lines[1], "inet " + names_.instance_ip + "/31");
  EXPECT_THAT(lines[2], HasSubstr("default via " + names_.host_ip));
}

TEST_F(Gen1SandboxTest, WritesGoToTheTmpfsLayerAndAreChargedToTheInstance) {
  std::string out_path = run_.path() + "/out.txt";
  UniqueFd out(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  SandboxSpec spec = Spec({"sh", "-c",
                           "echo y > /etc/extra && dd if=/dev/zero of=/big bs=1M count=24 "
                           "2>/dev/null && echo written && exec sleep 100"});
  spec.stdout_fd = out.get();
  SKIFF_ASSERT_OK_AND_ASSIGN(sandbox_, Gen1Sandbox::Start(spec));
  for (int i = 0; i < 500 && testbed::ReadTestFile(out_path) != "written\n"; ++i) usleep(10000);
  ASSERT_EQ(testbed::ReadTestFile(out_path), "written\n");
  // The 24 MiB live in the instance's tmpfs layer, charged to its memory cgroup.
  std::string usage = testbed::ReadTestFile("/sys/fs/cgroup/memory/" + names_.cgroup_path +
                                            "/memory.usage_in_bytes");
  ASSERT_FALSE(usage.empty());
  EXPECT_GE(std::stoll(usage), 24ll << 20);
  // The image's (lower) directory is untouched.
  EXPECT_FALSE(testbed::PathExists(rootfs_.path() + "/big"));
  EXPECT_FALSE(testbed::PathExists(rootfs_.path() + "/etc/extra"));
  SKIFF_EXPECT_OK(sandbox_->KillAll());
  SKIFF_ASSERT_OK(sandbox_->Wait().status());
  SKIFF_EXPECT_OK(sandbox_->Destroy());
}

TEST_F(Gen1SandboxTest, BlockedSyscallsFail) {
  // The app runs as root in its namespaces; the seccomp policy still refuses these.
  std::string out = RunScript(
      "mount -t tmpfs x /mnt 2>&1; echo mount=$?; "
      "unshare -n true 2>&1; echo unshare=$?; "
      "umount /proc 2>&1; echo umount=$?; "
      "echo still-here");
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 7u) << out;
  EXPECT_THAT(lines[0], HasSubstr("permission denied"));  // busybox's words for EPERM
  EXPECT_NE(lines[1], "mount=0");
  EXPECT_THAT(lines[2], HasSubstr("Operation not permitted"));
  EXPECT_NE(lines[3], "unshare=0");
  EXPECT_THAT(lines[4], HasSubstr("Operation not permitted"));
  EXPECT_NE(lines[5], "umount=0");
  EXPECT_EQ(lines[6], "still-here");
}

TEST_F(Gen1SandboxTest, RunsAsTheImageUser) {
  SandboxSpec spec = Spec({"sh", "-c", "id -u; id -g; id -G"});
  spec.uid = 65534;
  spec.gid = 65534;
  spec.additional_gids = {65534, 1234};
  std::string out_path = run_.path() + "/out.txt";
  UniqueFd out(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  spec.stdout_fd = out.get();
  SKIFF_ASSERT_OK_AND_ASSIGN(sandbox_, Gen1Sandbox::Start(spec));
  SKIFF_ASSERT_OK_AND_ASSIGN(AppExit exit, sandbox_->Wait());
  SKIFF_EXPECT_OK(sandbox_->Destroy());
  EXPECT_EQ(exit.wait_status, 0);
  EXPECT_EQ(testbed::ReadTestFile(out_path), "65534\n65534\n65534 1234\n");
}

TEST_F(Gen1SandboxTest, RunsInItsCgroup) {
  SKIFF_ASSERT_OK_AND_ASSIGN(sandbox_, Gen1Sandbox::Start(Spec({"sleep", "100"})));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::vector<pid_t> procs, sandbox_->cgroup().Procs());
  EXPECT_THAT(procs, Contains(sandbox_->init_pid()));
  EXPECT_EQ(procs.size(), 2u) << "the init and the app";
  SKIFF_EXPECT_OK(sandbox_->KillAll());
  SKIFF_ASSERT_OK_AND_ASSIGN(AppExit exit, sandbox_->Wait());
  EXPECT_FALSE(exit.reported);
  EXPECT_TRUE(WIFSIGNALED(exit.wait_status));
  SKIFF_EXPECT_OK(sandbox_->Destroy());
}

TEST_F(Gen1SandboxTest, CgroupNamespaceIsRootedAtTheInstance) {
  std::string out = RunScript("cat /proc/self/cgroup");
  std::vector<std::string> lines = Lines(out);
  ASSERT_FALSE(lines.empty());
  for (const std::string& line : lines) {
    EXPECT_THAT(line, Not(HasSubstr(names_.cgroup_path))) << out;
    EXPECT_TRUE(line.size() >= 2 && line.substr(line.size() - 2) == ":/") << line;
  }
}

TEST_F(Gen1SandboxTest, RootAppHasExactlyTheDefaultCapabilities) {
  SKIFF_ASSERT_OK_AND_ASSIGN(CapabilitySet caps, CapabilitySet::Default());
  char want[17];
  snprintf(want, sizeof(want), "%016llx", static_cast<unsigned long long>(caps.mask()));
  std::string out = RunScript("grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status");
  EXPECT_EQ(out, "CapEff:\t" + std::string(want) + "\nCapBnd:\t" + std::string(want) +
                     "\nCapAmb:\t0000000000000000\n");
}

TEST_F(Gen1SandboxTest, InitKeepsOnlyCapKillIsFilteredAndNotDumpable) {
  std::string out = RunScript(
      "sleep 0.1; grep -E '^(Cap(Eff|Prm)|NoNewPrivs|Seccomp):' /proc/1/status; "
      "head -c 1 /proc/1/environ >/dev/null 2>&1 || echo environ-denied");
  EXPECT_EQ(out,
            "CapPrm:\t0000000000000020\nCapEff:\t0000000000000020\nNoNewPrivs:\t1\n"
            "Seccomp:\t2\nenviron-denied\n");
}

TEST_F(Gen1SandboxTest, InitForwardsSigtermToTheApp) {
  // With default dispositions, sleep dies of the forwarded SIGTERM.
  SKIFF_ASSERT_OK_AND_ASSIGN(sandbox_, Gen1Sandbox::Start(Spec({"sleep", "100"})));
  SKIFF_EXPECT_OK(sandbox_->Signal(SIGTERM));
  SKIFF_ASSERT_OK_AND_ASSIGN(AppExit exit, sandbox_->Wait());
  EXPECT_TRUE(exit.reported);
  ASSERT_TRUE(WIFSIGNALED(exit.wait_status));
  EXPECT_EQ(WTERMSIG(exit.wait_status), SIGTERM);
  SKIFF_EXPECT_OK(sandbox_->Destroy());
}

TEST_F(Gen1SandboxTest, ImageSymlinksCannotRedirectTheSandboxMounts) {
  // A hostile image plants symlinks and files where the sandbox mounts and writes.
  for (const char* d : {"/proc", "/sys", "/dev"}) ASSERT_EQ(rmdir((rootfs_.path() + d).c_str()), 0);
  ASSERT_EQ(symlink("/tmp", (rootfs_.path() + "/proc").c_str()), 0);
  ASSERT_EQ(symlink("tmp", (rootfs_.path() + "/dev").c_str()), 0);
  testbed::WriteTestFile(rootfs_.path() + "/sys", "not a dir");
  ASSERT_EQ(symlink("/tmp/planted-hosts", (rootfs_.path() + "/etc/hosts").c_str()), 0);
  std::string out = RunScript(
      "ls -A /tmp | wc -l; test -L /proc || echo proc-is-dir; test -d /sys && echo sys-is-dir; "
      "test -L /etc/hosts || echo hosts-is-file; grep -c ' /proc proc ' /proc/self/mounts; "
      "grep -c ' /dev tmpfs ' /proc/self/mounts; head -c 1 /proc/timer_list | wc -c");
  EXPECT_EQ(out, "0\nproc-is-dir\nsys-is-dir\nhosts-is-file\n1\n1\n0\n");
  // The image's own layer is untouched.
  char target[64] = {};
  ASSERT_GT(readlink((rootfs_.path() + "/proc").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "/tmp");
}

TEST_F(Gen1SandboxTest, StaleEmptyRootfsDirFromACrashIsReused) {
  ASSERT_EQ(mkdir((run_.path() + "/rootfs").c_str(), 0700), 0);
  AppExit exit;
  EXPECT_EQ(RunScript("echo ok", &exit), "ok\n");
}

TEST_F(Gen1SandboxTest, MissingLowerDirFailsNamingTheField) {
  SandboxSpec spec = Spec({"true"});
  spec.lower_dirs = {rootfs_.path() + "/does-not-exist"};
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("lower_dirs[0]"), HasSubstr("does-not-exist"))));
}

TEST_F(Gen1SandboxTest, BadProgramFailsNamingExecveAndThePath) {
  SandboxSpec spec = Spec({"/bin/no-such-program", "x"});
  EXPECT_THAT(
      Gen1Sandbox::Start(spec),
      StatusIs(absl::StatusCode::kNotFound,
               AllOf(HasSubstr("execve"), HasSubstr("/bin/no-such-program"), HasSubstr("ENOENT"))));
  spec.argv = {"no-such-program-in-path"};
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-program-in-path")));
}

TEST_F(Gen1SandboxTest, BadWorkingDirFailsNamingChdir) {
  SandboxSpec spec = Spec({"true"});
  spec.working_dir = "/nonexistent/dir";
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("chdir"), HasSubstr("/nonexistent/dir"))));
}

TEST_F(Gen1SandboxTest, HostileSpecFieldsAreRejected) {
  SandboxSpec spec = Spec({"true"});
  spec.lower_dirs = {rootfs_.path() + ",upperdir=/"};
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lower_dirs[0]")));
  spec = Spec({"true"});
  spec.env.push_back("NOEQUALS");
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("env[2]")));
  spec = Spec({"true"});
  spec.hostname = "bad/host";
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hostname")));
  spec = Spec({"true"});
  spec.cgroup_path = "../escape";
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cgroup_path")));
  spec = Spec({});
  EXPECT_THAT(Gen1Sandbox::Start(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("argv")));
}

}  // namespace
}  // namespace skiff::gen1
