// virtio-net over a real tap (privileged). The test process first moves into a private
// network namespace of its own (unshare), so the tap, its packet socket and anything the
// kernel sends on it live there and vanish with the process, whatever happens to the test.
// Frames use the local experimental EtherType 0x88b5, so the kernel's own traffic on the link
// (IPv6 neighbour discovery) is told apart.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/gen2/devices/virtio/tap.h"
#include "tests/unit/gen2_virtio/net_test_fixture.h"

namespace skiff::gen2::virtio {
namespace {

using ::skiff::gen2::virtio::testing::NetFixture;
using ::skiff::gen2::virtio::testing::RxHeader;

constexpr char kTap[] = "sktap0";
constexpr uint16_t kEtherType = 0x88b5;

std::string Frame(const uint8_t dst[6], const uint8_t src[6], const std::string& payload) {
  std::string f(reinterpret_cast<const char*>(dst), 6);
  f.append(reinterpret_cast<const char*>(src), 6);
  f.push_back(static_cast<char>(kEtherType >> 8));
  f.push_back(static_cast<char>(kEtherType & 0xff));
  f += payload;
  return f;
}

class NetTapTest : public ::testing::Test, public NetFixture {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno); }

  void SetUp() override {
    absl::StatusOr<UniqueFd> tap = OpenTap(kTap);
    ASSERT_TRUE(tap.ok()) << tap.status();
    // Link up (the VMM's caller does this, or `ip link set up`).
    UniqueFd ctl(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTap, IFNAMSIZ - 1);
    ASSERT_EQ(ioctl(ctl.get(), SIOCGIFFLAGS, &ifr), 0) << strerror(errno);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(ioctl(ctl.get(), SIOCSIFFLAGS, &ifr), 0) << strerror(errno);
    ifindex_ = static_cast<int>(if_nametoindex(kTap));
    ASSERT_GT(ifindex_, 0);
    // The host's side of the wire: a packet socket on the tap for our EtherType.
    packet_.Reset(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kEtherType)));
    ASSERT_TRUE(packet_.valid()) << strerror(errno);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(kEtherType);
    addr.sll_ifindex = ifindex_;
    ASSERT_EQ(bind(packet_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    Start(std::move(*tap));
  }
  void TearDown() override {
    Stop();  // closes the tap fd: the non-persistent tap is deleted
    EXPECT_EQ(if_nametoindex(kTap), 0u) << "tap left behind";
  }

  int ifindex_ = 0;
  UniqueFd packet_;
};

TEST_F(NetTapTest, GuestToHost) {
  const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::string frame = Frame(bcast, testing::kGuestMac.data(), "from the guest");
  Transmit(frame);
  EXPECT_EQ(tx_.UsedIdx(), 1);
  EXPECT_EQ(net_->tx_dropped(), 0u);
  char buf[2048];
  pollfd pfd{packet_.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 5000), 1);
  const ssize_t n = recv(packet_.get(), buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n), frame);
}

TEST_F(NetTapTest, HostToGuest) {
  PostRx(16);
  const uint8_t host_mac[6] = {0x02, 0, 0, 0, 0, 1};
  const std::string frame = Frame(testing::kGuestMac.data(), host_mac, "to the guest");
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex_;
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, testing::kGuestMac.data(), 6);
  ASSERT_EQ(sendto(packet_.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to),
                   sizeof(to)),
            static_cast<ssize_t>(frame.size()));
  // The kernel may send its own frames first (IPv6 neighbour discovery): find ours.
  bool found = false;
  ASSERT_TRUE(RunUntil([&] {
    for (uint16_t i = 0; i < rx_.UsedIdx() && !found; ++i) {
      auto [header, got] = Received(i);
      EXPECT_EQ(header, RxHeader());
      found = got == frame;
    }
    return found;
  }));
  EXPECT_GE(irq_.count(), 1);
}

}  // namespace
}  // namespace skiff::gen2::virtio
