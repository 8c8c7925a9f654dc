// The minimal guest kernel booting skiff-init for real, under QEMU's microvm machine with
// software emulation (TCG: this machine's /dev/kvm cannot run Linux, see issue 4). It is
// the guest half of the kvm-linux end-to-end path with QEMU standing in for our VMM, the
// same devices: virtio-mmio blk (the erofs root built by BuildRootImage), net (QEMU's
// user network), console (the control channel, a Unix socket), COM1 for the kernel's
// console. Proves the kernel fragment has what skiff-init needs and every system step
// works in a real guest: hello → spec → mounts, overlay, files, hostname, eth0,
// switch_root → the app's output and exit code → the VM ends (reboot=t here: QEMU's
// microvm has no i8042; our VMM's kernel line says reboot=k). Label slow: it runs
// scripts/guest-kernel.sh --minimal (cached; ~6 min to build the first time).

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/host_channel.h"
#include "sandbox/gen2/guest/initramfs.h"
#include "sandbox/gen2/guest/root_image.h"
#include "tests/support/shell.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::Shell;
using ::skiff::testing::SourceDir;

using control::Message;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(90);

class QemuBootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-qemu-boot-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (qemu_ > 0) {
      kill(qemu_, SIGKILL);
      waitpid(qemu_, nullptr, 0);
    }
    Shell("rm -rf '" + dir_ + "'");
  }
  std::string dir_;
  pid_t qemu_ = -1;
};

TEST_F(QemuBootTest, MinimalKernelBootsSkiffInitWhichRunsTheAppAndEndsTheVm) {
  // The kernel, the initramfs, the root image.
  std::string kernel;
  for (const auto& line :
       absl::StrSplit(Shell(SourceDir() + "/scripts/guest-kernel.sh --minimal"), '\n')) {
    if (absl::StartsWith(line, "kernel=")) kernel = std::string(line.substr(7));
  }
  ASSERT_FALSE(kernel.empty());
  const std::string layer = dir_ + "/layer";
  Shell("mkdir -p " + layer + "/bin " + layer + "/etc && cp /bin/busybox " + layer +
        "/bin/ && ln -s busybox " + layer + "/bin/sh");
  ASSERT_TRUE(guest::BuildRootImage({{layer}}, dir_ + "/root.erofs").ok());
  ASSERT_TRUE(guest::BuildInitramfs({SKIFF_INIT_PATH, "", ""}, dir_ + "/initrd.cpio").ok());

  // The control socket QEMU connects to.
  const std::string sock = dir_ + "/control.sock";
  UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, sock.c_str());
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.get(), 1), 0);

  const absl::Time start = absl::Now();
  std::vector<std::string> args = {
      "qemu-system-x86_64",
      "-M",
      "microvm,acpi=off",
      "-cpu",
      "max",
      "-m",
      "256",
      "-smp",
      "2",
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-kernel",
      kernel,
      "-initrd",
      dir_ + "/initrd.cpio",
      "-append",
      "console=ttyS0 reboot=t panic=-1 quiet",
      "-serial",
      "file:" + dir_ + "/serial.log",
      "-drive",
      "id=root,file=" + dir_ + "/root.erofs,format=raw,if=none,readonly=on",
      "-device",
      "virtio-blk-device,drive=root",
      "-netdev",
      "user,id=n0",
      "-device",
      "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56",
      "-chardev",
      "socket,id=ctl,path=" + sock,
      "-device",
      "virtio-serial-device",
      "-device",
      "virtconsole,chardev=ctl"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  qemu_ = fork();
  ASSERT_GE(qemu_, 0);
  if (qemu_ == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    execvp(argv[0], argv.data());
    _exit(126);
  }
  pollfd pfd = {listener.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(kTimeout))), 1);
  UniqueFd host(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(host.valid());

  control::FrameReader reader;
  std::string out, err;
  auto next = [&]() -> Message {
    while (true) {
      absl::StatusOr<std::optional<Message>> m = control::ReadMessage(host.get(), reader, kTimeout);
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok() || !m->has_value()) return control::Hello{0};
      if (auto* log = std::get_if<control::LogChunk>(&**m)) {
        (log->stream == control::LogStream::kStdout ? out : err) += log->data;
        continue;
      }
      return **m;
    }
  };

  ASSERT_EQ(next(), Message(control::Hello{control::kProtocolVersion}));
  const absl::Duration to_hello = absl::Now() - start;
  control::InstanceSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "echo host=$(busybox cat /proc/sys/kernel/hostname) nproc=$(busybox nproc)\n"
               "busybox ip -4 addr show eth0 | busybox grep inet\n"
               "busybox ip route | busybox grep default\n"
               "busybox cat /etc/hosts\n"
               "busybox grep ' / / ' /proc/self/mountinfo\n"
               "echo data > /written && busybox cat /written\n"
               "echo to-stderr >&2\n"
               "echo PORT=$PORT\n"
               "exit 7\n"};
  spec.env = {"PATH=/bin"};
  spec.working_dir = "/";
  spec.hostname = "i-qemu";
  spec.port = 8080;
  spec.network.enabled = true;
  spec.network.address = {10, 0, 2, 15};
  spec.network.prefix_length = 24;
  spec.network.gateway = {10, 0, 2, 2};
  spec.network.mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  spec.tmpfs_bytes = 64 << 20;
  spec.root_device = "/dev/vda";
  spec.root_fstype = "erofs";
  spec.files = {{"/etc/hosts", "127.0.0.1 localhost\n10.0.2.15 i-qemu\n"}};
  ASSERT_TRUE(control::WriteMessage(host.get(), spec).ok());
  Message started = next();
  EXPECT_TRUE(std::holds_alternative<control::Started>(started)) << DescribeMessage(started);
  EXPECT_EQ(next(), Message(control::Exited{false, 7}));
  const absl::Duration to_exit = absl::Now() - start;

  // The VM ends by itself after the report.
  int status = -1;
  absl::Time deadline = absl::Now() + kTimeout;
  while (absl::Now() < deadline && waitpid(qemu_, &status, WNOHANG) != qemu_) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(WIFEXITED(status)) << "QEMU did not end: " << status;
  qemu_ = -1;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::printf("qemu TCG: process start -> hello %.0f ms, -> exited %.0f ms, -> VM end %.0f ms\n",
              absl::ToDoubleMilliseconds(to_hello), absl::ToDoubleMilliseconds(to_exit),
              absl::ToDoubleMilliseconds(absl::Now() - start));

  EXPECT_THAT(out, HasSubstr("host=i-qemu nproc=2\n"));
  EXPECT_THAT(out, HasSubstr("inet 10.0.2.15/24"));
  EXPECT_THAT(out, HasSubstr("default via 10.0.2.2 dev eth0"));
  EXPECT_THAT(out, HasSubstr("127.0.0.1 localhost\n10.0.2.15 i-qemu\n"));
  EXPECT_THAT(out, ::testing::ContainsRegex(" / / rw[^\n]* - overlay overlay rw[^\n]*"
                                            "lowerdir=/skiff/lower,upperdir=/skiff/layer/upper"));
  EXPECT_THAT(out, HasSubstr("\ndata\n"));
  EXPECT_THAT(out, HasSubstr("PORT=8080\n"));
  EXPECT_EQ(err, "to-stderr\n");
  EXPECT_THAT(Shell("cat " + dir_ + "/serial.log"), HasSubstr("reboot: Restarting system"));
}

}  // namespace
}  // namespace skiff::gen2
