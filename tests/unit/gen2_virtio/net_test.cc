// virtio-net with a datagram socketpair standing in for the tap (one frame per read/write, as a
// tap without IFF_VNET_HDR): frames both ways with the 12-byte header, no busy loop without
// receive buffers, drops, and the malformed cases. net_tap_test.cc does it over a real tap.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "tests/unit/gen2_virtio/net_test_fixture.h"

namespace skiff::gen2::virtio {
namespace {

using ::skiff::gen2::virtio::testing::NetFixture;
using ::skiff::gen2::virtio::testing::RxHeader;

class NetTest : public ::testing::Test, public NetFixture {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    host_.Reset(sv[0]);
    Start(UniqueFd(sv[1]));
  }
  void TearDown() override { Stop(); }

  std::string HostRecv() {
    char buf[70000];
    const ssize_t n = recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    return n < 0 ? std::string() : std::string(buf, n);
  }

  UniqueFd host_;
};

TEST_F(NetTest, FeaturesAndConfig) {
  EXPECT_EQ(driver_->Read32(mmio::kRegDeviceId), kDeviceIdNet);
  const uint64_t f = driver_->DeviceFeatures();
  EXPECT_EQ(f, FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc) | FeatureBit(net::kFMac) |
                   FeatureBit(net::kFStatus) | FeatureBit(kFRingEventIdx))
      << "no offloads, no mergeable buffers";
  uint8_t config[8];
  transport_->Read(mmio::kConfigSpace, std::span<uint8_t>(config, 8));
  EXPECT_EQ(std::memcmp(config, testing::kGuestMac.data(), 6), 0);
  EXPECT_EQ(config[6], net::kSLinkUp);
}

TEST_F(NetTest, TransmitStripsTheHeader) {
  const char raw[] =
      "\xff\xff\xff\xff\xff\xff"
      "RT\0\x12\x34\x56"
      "\x88\xb5payload";
  const std::string frame(raw, sizeof(raw) - 1);
  ASSERT_EQ(frame.size(), 21u);
  Transmit(frame);
  EXPECT_EQ(tx_.UsedIdx(), 1);
  EXPECT_EQ(HostRecv(), frame);
  EXPECT_EQ(driver_->AckInterrupts(), mmio::kInterruptUsedBuffer);
  EXPECT_EQ(net_->tx_dropped(), 0u);
}

TEST_F(NetTest, ReceiveWritesAZeroHeaderWithOneBuffer) {
  PostRx(4);
  const std::string frame(60, 'f');
  ASSERT_EQ(send(host_.get(), frame.data(), frame.size(), 0), 60);
  ASSERT_EQ(send(host_.get(), "second-frame", 12, 0), 12);
  ASSERT_TRUE(RunUntil([&] { return rx_.UsedIdx() == 2; }));
  EXPECT_EQ(Received(0), std::make_pair(RxHeader(), frame));
  EXPECT_EQ(Received(1), std::make_pair(RxHeader(), std::string("second-frame")));
  EXPECT_GE(irq_.count(), 1);
}

TEST_F(NetTest, NoReceiveBuffersStopsReadingUntilTheDriverAddsSome) {
  ASSERT_EQ(send(host_.get(), "waiting", 7, 0), 7);
  Idle(1);
  EXPECT_EQ(Idle(10), 0) << "the loop must not spin on a readable tap it cannot serve";
  PostRx(1);
  ASSERT_TRUE(RunUntil([&] { return rx_.UsedIdx() == 1; }));
  EXPECT_EQ(Received(0).second, "waiting");
  // Used up again: the next frame waits in the host's queue, not in ours.
  ASSERT_EQ(send(host_.get(), "next", 4, 0), 4);
  Idle(1);
  EXPECT_EQ(Idle(5), 0);
  PostRx(1);
  ASSERT_TRUE(RunUntil([&] { return rx_.UsedIdx() == 2; }));
  EXPECT_EQ(Received(1).second, "next");
}

TEST_F(NetTest, FrameLongerThanTheBufferIsTruncated) {
  PostRx(1, 12 + 100);
  const std::string frame(500, 'z');
  ASSERT_EQ(send(host_.get(), frame.data(), frame.size(), 0), 500);
  ASSERT_TRUE(RunUntil([&] { return rx_.UsedIdx() == 1; }));
  EXPECT_EQ(rx_.Used(0).second, 112u);
  EXPECT_FALSE(transport_->broken());
}

TEST_F(NetTest, BadTransmitChainsAreDropped) {
  // Only a header, and a header cut short: nothing to send.
  tx_.Add({{testing::kNetTxData, 12}});
  tx_.Add({{testing::kNetTxData, 5}});
  // A frame larger than any Ethernet frame.
  tx_.Add({{testing::kNetTxData, 12}, {testing::kNetTxData, 0x20000}});
  driver_->Notify(net::kTxQueue);
  EXPECT_EQ(tx_.UsedIdx(), 3);
  EXPECT_EQ(net_->tx_dropped(), 3u);
  EXPECT_EQ(HostRecv(), "");
  EXPECT_FALSE(transport_->broken());
}

TEST_F(NetTest, ReceiveChainTooShortForTheHeaderBreaksTheDevice) {
  PostRx(1, 8);
  ASSERT_EQ(send(host_.get(), "x", 1, 0), 1);
  ASSERT_TRUE(RunUntil([&] { return transport_->broken(); }));
  EXPECT_NE(driver_->Status() & kStatusDeviceNeedsReset, 0u);
  EXPECT_EQ(Idle(5), 0) << "a broken device stops reading the tap";
  Transmit("ignored");
  EXPECT_EQ(tx_.UsedIdx(), 0);
}

TEST_F(NetTest, MalformedTransmitQueueBreaksTheDevice) {
  tx_.SetDesc(0, testing::kNetTxData, 12, kDescFNext, 0);  // a loop
  tx_.Publish(0);
  driver_->Notify(net::kTxQueue);
  EXPECT_TRUE(transport_->broken());
  EXPECT_EQ(HostRecv(), "");
}

TEST_F(NetTest, ResetStopsReading) {
  PostRx(2);
  driver_->SetStatus(0);
  ASSERT_EQ(send(host_.get(), "x", 1, 0), 1);
  EXPECT_EQ(Idle(5), 0);
  EXPECT_EQ(rx_.UsedIdx(), 0);
}

}  // namespace
}  // namespace skiff::gen2::virtio
