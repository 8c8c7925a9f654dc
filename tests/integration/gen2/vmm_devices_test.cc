// skiff-vmm with its virtio devices and the project's test guest, as a process under its
// seccomp filter: virtio-blk reads the root image and writes the scratch disk (verified on
// the host files), virtio-net exchanges frames with a tap in a test network namespace,
// the control channel round-trips a line over the Unix socket, and a guest that writes
// garbage descriptors leaves the VMM running with the device marked broken.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/testguest/testguest_paths.h"
#include "tests/integration/gen2/tiny_guest.h"
#include "tests/integration/gen2/vmm_test_support.h"

namespace skiff::gen2 {
namespace {

std::string Binary() {
  const char* dir = getenv("SKIFF_BUILD_DIR");
  return std::string(dir ? dir : ".") + "/sandbox/gen2/skiff-vmm";
}

// skiff-vmm with stdout (the console) and stderr to files.
class VmmProcess {
 public:
  VmmProcess(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
    pid_ = fork();
    if (pid_ == 0) {
      const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv;
      const std::string bin = Binary();
      argv.push_back(const_cast<char*>(bin.c_str()));
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~VmmProcess() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      Wait();
    }
  }
  // The exit code, or 128 + signal.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  bool waited_ = false;
};

uint32_t Fnv1a(const std::string& bytes) {
  uint32_t h = 0x811c9dc5;
  for (unsigned char c : bytes) h = (h ^ c) * 0x01000193;
  return h;
}

class VmmDevicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  }
  std::vector<std::string> Args(const std::string& mode) {
    return {"--kernel",     testguest::kBzImagePath,
            "--cmdline",    "testguest.mode=" + mode,
            "--memory-mib", "64",
            "--vcpus",      "1"};
  }
  std::string Out() { return testing::ReadAll(dir_.File("out")); }
  std::string Err() { return testing::ReadAll(dir_.File("err")); }

  testing::TempDir dir_;
};

TEST_F(VmmDevicesTest, BlkReadsRootAndWritesScratch) {
  std::string root(1 << 20, '\0');
  for (size_t i = 0; i < root.size(); ++i) root[i] = static_cast<char>((i * 131) >> 3);
  testing::WriteBytes(dir_.File("root.img"), std::vector<uint8_t>(root.begin(), root.end()));
  testing::WriteBytes(dir_.File("scratch.img"), std::vector<uint8_t>(1 << 20, 0));
  std::vector<std::string> args = Args("blk");
  args.insert(args.end(), {"--disk", dir_.File("root.img") + ",ro", "--scratch-disk",
                           dir_.File("scratch.img")});
  VmmProcess vmm(args, dir_.File("out"), dir_.File("err"));
  ASSERT_EQ(vmm.Wait(), 0) << Err();
  const std::string out = Out();
  // The guest read the first 8 sectors of the root image: same hash as the host's bytes.
  EXPECT_NE(
      out.find(absl::StrFormat("tg: blk root 0xd0000000 capacity=2048 ro=1 read=8 fnv1a=%08x\n",
                               Fnv1a(root.substr(0, 8 * 512)))),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("tg: blk scratch 0xd0003000 capacity=2048 wrote=8 readback=ok"),
            std::string::npos)
      << out;
  // The guest's writes reached the host file: the README's pattern in the first 8 sectors.
  const std::string scratch = testing::ReadAll(dir_.File("scratch.img"));
  ASSERT_EQ(scratch.size(), 1u << 20);
  for (size_t o = 0; o < 8 * 512; ++o) {
    ASSERT_EQ(static_cast<uint8_t>(scratch[o]), ((7 * o + o / 512) % 256) ^ 0x5a) << "offset " << o;
  }
  EXPECT_EQ(scratch[8 * 512], 0);  // nothing beyond
  // The root image was attached read-only and is unchanged.
  EXPECT_EQ(testing::ReadAll(dir_.File("root.img")), root);
}

TEST_F(VmmDevicesTest, ControlChannelRoundTrip) {
  const std::string path = dir_.File("control.sock");
  UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.get(), 1), 0);
  std::vector<std::string> args = Args("control");
  args.insert(args.end(), {"--control-socket", path});
  VmmProcess vmm(args, dir_.File("out"), dir_.File("err"));
  pollfd pfd{listener.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 20000), 1) << "skiff-vmm never connected: " << Err();
  UniqueFd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn.valid());
  auto read_line = [&] {
    std::string line;
    char c;
    while (line.empty() || line.back() != '\n') {
      pollfd p{conn.get(), POLLIN, 0};
      if (poll(&p, 1, 20000) != 1 || read(conn.get(), &c, 1) != 1) break;
      line += c;
    }
    return line;
  };
  EXPECT_EQ(read_line(), "tg-control hello\n");
  const std::string ping = "ping from the host 42\n";
  ASSERT_EQ(write(conn.get(), ping.data(), ping.size()), static_cast<ssize_t>(ping.size()));
  EXPECT_EQ(read_line(), ping);  // the guest echoed it
  EXPECT_EQ(vmm.Wait(), 0) << Err();
  EXPECT_NE(Out().find("tg: control rx=ping from the host 42\n"), std::string::npos) << Out();
}

TEST_F(VmmDevicesTest, GarbageDescriptorsBreakTheDeviceNotTheVmm) {
  testing::WriteBytes(dir_.File("scratch.img"), std::vector<uint8_t>(1 << 20, 0));
  std::vector<std::string> args = Args("garbage");
  args.insert(args.end(), {"--scratch-disk", dir_.File("scratch.img")});
  VmmProcess vmm(args, dir_.File("out"), dir_.File("err"));
  ASSERT_EQ(vmm.Wait(), 0) << Err();  // the guest ran to its reset
  const std::string out = Out();
  for (const char* c : {"head-out-of-range", "next-out-of-range", "loop", "outside-ram"}) {
    EXPECT_NE(out.find(absl::StrFormat("tg: garbage %s device-broken", c)), std::string::npos)
        << c << "\n"
        << out;
  }
  EXPECT_NE(out.find("tg: garbage device-broken\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tg: done\n"), std::string::npos);
  EXPECT_NE(Err().find("driver broke the device"), std::string::npos) << Err();
}

// In a child in its own network namespace: a persistent tap, up, watched by a packet
// socket; skiff-vmm attaches to it; the guest's ARP request is read and answered. The child
// exits 0 on success, else a step number; details go to `log`. The namespace (and the tap)
// die with the child.
int NetChild(const std::string& dir) {
  if (unshare(CLONE_NEWNET) != 0) return 2;
  // No IPv6 on the tap: its router/multicast chatter would reach the guest before our reply.
  {
    UniqueFd f(open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY | O_CLOEXEC));
    if (!f || write(f.get(), "1", 1) != 1) return 16;
  }
  const char* kTap = "sktap0";
  {
    UniqueFd tun(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTap, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (!tun || ioctl(tun.get(), TUNSETIFF, &ifr) != 0) return 3;
    if (ioctl(tun.get(), TUNSETPERSIST, 1) != 0) return 4;
  }
  UniqueFd inet(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, kTap, IFNAMSIZ - 1);
  if (ioctl(inet.get(), SIOCGIFFLAGS, &ifr) != 0) return 5;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(inet.get(), SIOCSIFFLAGS, &ifr) != 0) return 6;
  if (ioctl(inet.get(), SIOCGIFINDEX, &ifr) != 0) return 7;
  UniqueFd packet(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ARP);
  ll.sll_ifindex = ifr.ifr_ifindex;
  if (!packet || bind(packet.get(), reinterpret_cast<sockaddr*>(&ll), sizeof(ll)) != 0) return 8;

  VmmProcess vmm(
      {"--kernel", testguest::kBzImagePath, "--cmdline",
       "testguest.mode=net testguest.ip=10.9.0.2 testguest.peer=10.9.0.1", "--memory-mib", "64",
       "--vcpus", "1", "--tap", kTap, "--mac", "52:54:00:0a:09:02"},
      dir + "/out", dir + "/err");
  pollfd p{packet.get(), POLLIN, 0};
  if (poll(&p, 1, 20000) != 1) return 9;
  uint8_t frame[1600];
  const ssize_t n = recv(packet.get(), frame, sizeof(frame), 0);
  // An Ethernet ARP request from the guest's MAC asking for 10.9.0.1.
  const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x0a, 0x09, 0x02};
  if (n < 42 || std::memcmp(frame + 6, guest_mac, 6) != 0 || frame[21] != 1) return 10;
  if (std::memcmp(frame + 38, "\x0a\x09\x00\x01", 4) != 0) return 11;
  // The reply: 10.9.0.1 is at 02:00:00:00:00:01.
  uint8_t reply[42];
  const uint8_t host_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(reply, guest_mac, 6);
  std::memcpy(reply + 6, host_mac, 6);
  reply[12] = 0x08;
  reply[13] = 0x06;
  const uint8_t arp_hdr[8] = {0, 1, 8, 0, 6, 4, 0, 2};
  std::memcpy(reply + 14, arp_hdr, 8);
  std::memcpy(reply + 22, host_mac, 6);
  std::memcpy(reply + 28, "\x0a\x09\x00\x01", 4);
  std::memcpy(reply + 32, guest_mac, 6);
  std::memcpy(reply + 38, "\x0a\x09\x00\x02", 4);
  if (send(packet.get(), reply, sizeof(reply), 0) != sizeof(reply)) return 12;
  if (vmm.Wait() != 0) return 13;
  std::string hex;
  for (uint8_t b : reply) hex += absl::StrFormat("%02x", b);
  const std::string out = testing::ReadAll(dir + "/out");
  if (out.find("tg: net rx len=") == std::string::npos) return 14;
  if (out.find("tg: net rx frame=" + hex) == std::string::npos) {
    testing::WriteBytes(dir + "/want", std::vector<uint8_t>(hex.begin(), hex.end()));
    return 15;
  }
  return 0;
}

TEST_F(VmmDevicesTest, NetFramesBothWaysThroughATap) {
  const std::string dir = dir_.path();
  const pid_t pid = fork();
  if (pid == 0) _exit(NetChild(dir));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "failed at step " << WEXITSTATUS(status)
      << "\nwant frame=" << testing::ReadAll(dir_.File("want")) << "\nconsole:\n"
      << Out() << "\nstderr:\n"
      << Err();
  EXPECT_NE(Out().find("tg: net tx arp who-has 10.9.0.1 tell 10.9.0.2 mac=52:54:00:0a:09:02"),
            std::string::npos)
      << Out();
}

}  // namespace
}  // namespace skiff::gen2
