// skiff-init with every system step, as PID 1 of new pid, mount, uts and net namespaces
// (privileged): a tmpfs chroot stands in for the initramfs, a loop device for the
// virtio-blk root (an erofs image built by BuildRootImage from busybox), a veth named eth0
// for the virtio-net device, a socketpair for the virtio-console. Covers mounting the
// kernel filesystems, the read-only root + tmpfs overlay, moving the kernel filesystems,
// writing /etc files, hostname, lo/eth0/route, switch_root, the app as PID 2, the exit
// report, and the end: reboot(RB_AUTOBOOT) in a PID namespace ends it with SIGHUP.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/host_channel.h"
#include "sandbox/gen2/guest/root_image.h"
#include "tests/support/shell.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::Shell;

using control::Message;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kTimeout = absl::Seconds(20);

class SkiffInitPid1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (namespaces, mounts, loop devices)";
    char tmpl[] = "/tmp/skiff-init-pid1-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // The image: busybox as /bin/sh, an /etc; no /proc, /sys, /dev or /run (skiff-init
    // makes the mount points in the writable layer).
    const std::string layer = dir_ + "/layer";
    Shell("mkdir -p " + layer + "/bin " + layer + "/etc && cp /bin/busybox " + layer +
          "/bin/ && ln -s busybox " + layer + "/bin/sh");
    absl::Status s = guest::BuildRootImage({{layer}}, dir_ + "/root.erofs");
    ASSERT_TRUE(s.ok()) << s;
    std::string loop = Shell("losetup --find --show --read-only " + dir_ + "/root.erofs");
    ASSERT_FALSE(loop.empty());
    loop_ = loop.substr(0, loop.size() - 1);
    ASSERT_EQ(mkdir((dir_ + "/initramfs").c_str(), 0755), 0);
  }

  void TearDown() override {
    if (wrapper_ > 0) {
      kill(wrapper_, SIGKILL);
      waitpid(wrapper_, nullptr, 0);
    }
    if (!loop_.empty()) Shell("losetup -d " + loop_);
    Shell("rm -rf '" + dir_ + "'");
  }

  // Starts skiff-init as PID 1 in fresh namespaces with the control channel on fd 3.
  void Boot() {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    host_ = UniqueFd(sv[0]);
    UniqueFd guest(sv[1]);
    const std::string t = dir_ + "/initramfs";
    const std::string script =
        "ip link add eth0 type veth peer name peer0\n"
        "ip link set peer0 up\n"
        "mount -t tmpfs -o size=16m initramfs " +
        t +
        "\n"
        "cp " SKIFF_INIT_PATH " " +
        t +
        "/init\n"
        "exec chroot " +
        t + " /init --control=fd:3\n";
    wrapper_ = fork();
    ASSERT_GE(wrapper_, 0);
    if (wrapper_ == 0) {
      dup2(guest.get(), 3);
      execl("/usr/bin/unshare", "unshare", "--pid", "--fork", "--mount", "--uts", "--net",
            "--propagation", "private", "sh", "-ec", script.c_str(), nullptr);
      _exit(126);
    }
  }

  Message Next() {
    while (true) {
      absl::StatusOr<std::optional<Message>> m =
          control::ReadMessage(host_.get(), reader_, kTimeout);
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok() || !m->has_value()) return control::Hello{0};
      if (auto* log = std::get_if<control::LogChunk>(&**m)) {
        (log->stream == control::LogStream::kStdout ? out_ : err_) += log->data;
        continue;
      }
      return **m;
    }
  }

  // The wrapper's end: how the PID namespace's init ended, as unshare(1) passes it on.
  int WaitWrapper() {
    absl::Time deadline = absl::Now() + kTimeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (waitpid(wrapper_, &status, WNOHANG) == wrapper_) {
        wrapper_ = -1;
        return status;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return -1;
  }

  control::InstanceSpec Spec(const std::string& script) {
    control::InstanceSpec s;
    s.argv = {"/bin/sh", "-c", script};
    s.env = {"PATH=/bin"};
    s.working_dir = "/";
    s.hostname = "i-pid1";
    s.port = 8080;
    s.network.enabled = true;
    s.network.address = {10, 250, 0, 2};
    s.network.prefix_length = 24;
    s.network.gateway = {10, 250, 0, 1};
    s.network.mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    s.tmpfs_bytes = 64 << 20;
    s.root_device = loop_;
    s.root_fstype = "erofs";
    s.files = {{"/etc/hosts", "127.0.0.1 localhost\n10.250.0.2 i-pid1\n"},
               {"/etc/hostname", "i-pid1\n"}};
    return s;
  }

  std::string dir_, loop_;
  pid_t wrapper_ = -1;
  UniqueFd host_;
  control::FrameReader reader_;
  std::string out_, err_;
};

// reboot(RB_AUTOBOOT) in a PID namespace ends its init with SIGHUP; unshare(1) re-raises
// its child's signal.
void ExpectRebooted(int status) {
  ASSERT_NE(status, -1) << "the namespace did not end";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGHUP) << "wait status " << status;
}

TEST_F(SkiffInitPid1Test, EverySystemStepThenTheAppThenTheEnd) {
  Boot();
  EXPECT_EQ(Next(), Message(control::Hello{control::kProtocolVersion}));
  control::InstanceSpec spec = Spec(
      "echo pid=$$ init=$(busybox cat /proc/1/comm)\n"
      "echo host=$(busybox cat /proc/sys/kernel/hostname)\n"
      "echo lo=$(busybox cat /sys/class/net/lo/flags) mac=$(busybox cat "
      "/sys/class/net/eth0/address)\n"
      "busybox ip -4 addr show eth0 | busybox grep inet\n"
      "busybox ip route | busybox grep default\n"
      "busybox cat /etc/hosts /etc/hostname\n"
      "busybox grep ' / / ' /proc/self/mountinfo\n"
      "echo data > /written && busybox cat /written\n"
      "busybox ls -d /skiff /init 2>&1 || true\n"
      "busybox ls -d /dev/null /dev/pts /dev/shm /run /sys/class\n"
      "echo PORT=$PORT\n"
      "exit 5\n");
  EXPECT_TRUE(WriteMessage(host_.get(), spec).ok());
  Message started = Next();
  ASSERT_TRUE(std::holds_alternative<control::Started>(started)) << DescribeMessage(started);
  const int32_t app_pid = std::get<control::Started>(started).pid;
  EXPECT_GT(app_pid, 1);  // skiff-init is PID 1
  EXPECT_EQ(Next(), Message(control::Exited{false, 5}));
  ExpectRebooted(WaitWrapper());

  EXPECT_EQ(err_, "");
  // The staging mounts and the initramfs's /init are out of reach after switch_root.
  EXPECT_THAT(out_, HasSubstr("ls: /skiff: No such file or directory\n"
                              "ls: /init: No such file or directory\n"));
  EXPECT_THAT(out_, HasSubstr("pid=" + std::to_string(app_pid) + " init=init\n"));
  EXPECT_THAT(out_, HasSubstr("host=i-pid1\n"));
  EXPECT_THAT(out_, HasSubstr("lo=0x9 mac=02:00:00:00:00:02\n"));  // lo: IFF_UP|IFF_LOOPBACK
  EXPECT_THAT(out_, HasSubstr("inet 10.250.0.2/24"));
  EXPECT_THAT(out_, HasSubstr("default via 10.250.0.1 dev eth0"));
  EXPECT_THAT(out_, HasSubstr("127.0.0.1 localhost\n10.250.0.2 i-pid1\ni-pid1\n"));
  EXPECT_THAT(out_, ::testing::ContainsRegex(
                        " / / rw[^\n]* - overlay overlay rw[^\n]*lowerdir=/skiff/lower,"
                        "upperdir=/skiff/layer/upper,workdir=/skiff/layer/work"));
  EXPECT_THAT(out_, HasSubstr("\ndata\n"));  // the writable layer
  EXPECT_THAT(out_, HasSubstr("/dev/null\n/dev/pts\n/dev/shm\n/run\n/sys/class\n"));
  EXPECT_THAT(out_, HasSubstr("PORT=8080\n"));
}

TEST_F(SkiffInitPid1Test, MissingRootDeviceIsAnErrorThenTheEnd) {
  Boot();
  EXPECT_EQ(Next(), Message(control::Hello{control::kProtocolVersion}));
  control::InstanceSpec spec = Spec("exit 0");
  spec.root_device = "/dev/vdz";
  EXPECT_TRUE(WriteMessage(host_.get(), spec).ok());
  EXPECT_EQ(Next(), Message(control::Error{control::InitStep::kMountRoot, ENOENT,
                                           "mount(/dev/vdz, /skiff/lower, erofs, ro)"}));
  ExpectRebooted(WaitWrapper());
}

}  // namespace
}  // namespace skiff::gen2
