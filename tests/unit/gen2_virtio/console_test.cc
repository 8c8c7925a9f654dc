// virtio-console as the control channel: bytes both ways through a socketpair standing in for
// the host's Unix socket, backpressure when the host stops reading, no busy loop when the
// guest has no receive buffers, EOF reported once, and a malformed queue.

#include "sandbox/gen2/devices/virtio/console.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "sandbox/gen2/devices/event_loop.h"
#include "sandbox/gen2/devices/virtio/mmio_transport.h"
#include "sandbox/gen2/devices/virtio/virtio.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/gen2_virtio/virtio_test_driver.h"

namespace skiff::gen2::virtio {
namespace {

using ::skiff::gen2::virtio::testing::Buf;
using ::skiff::gen2::virtio::testing::CountingInterrupt;
using ::skiff::gen2::virtio::testing::DriverQueue;
using ::skiff::gen2::virtio::testing::FakeGuest;
using ::skiff::gen2::virtio::testing::MmioDriver;

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kRxData = kBase + 0x10000;   // 64 KiB of receive buffers
constexpr uint64_t kTxData = kBase + 0x100000;  // up to 2 MiB of transmit data

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    host_.Reset(sv[0]);
    SKIFF_ASSERT_OK_AND_ASSIGN(loop_, EventLoop::Create());
    SKIFF_ASSERT_OK_AND_ASSIGN(
        console_, VirtioConsole::Create(UniqueFd(sv[1]), loop_.get(), [this] { ++eofs_; }));
    transport_ = std::make_unique<MmioTransport>(guest_.memory(), console_, &irq_);
    driver_ = std::make_unique<MmioDriver>(*transport_);
    SKIFF_ASSERT_OK(driver_->Init(~uint64_t{0}, {rx_.config(), tx_.config()}));
  }
  void TearDown() override {
    transport_.reset();
    console_.reset();
  }

  // Runs the loop until `done` or 5 s.
  template <typename Pred>
  bool RunUntil(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      absl::StatusOr<int> n = loop_->RunOnce(10);
      if (!n.ok()) return false;
    }
    return true;
  }
  // Runs the loop for a while and returns how many callbacks ran.
  int Idle(int rounds = 5) {
    int ran = 0;
    for (int i = 0; i < rounds; ++i) ran += loop_->RunOnce(10).value_or(0);
    return ran;
  }
  // Posts `n` receive buffers of `size` bytes.
  void PostRx(int n, uint32_t size) {
    for (int i = 0; i < n; ++i) {
      rx_.Add({{kRxData + next_rx_ * size, size, true}});
      ++next_rx_;
    }
    driver_->Notify(console::kReceiveQueue);
  }
  // The bytes of every used receive buffer, in order.
  std::string Received(uint32_t size) {
    std::string out;
    for (uint16_t i = 0; i < rx_.UsedIdx(); ++i) {
      auto [id, len] = rx_.Used(i);
      const uint64_t gpa = guest_.Get<uint64_t>(kBase + 16ull * id);  // descriptor id's addr
      EXPECT_LE(len, size);
      out.append(reinterpret_cast<char*>(guest_.At(gpa)), len);
    }
    return out;
  }
  std::string HostRead() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT)) > 0) out.append(buf, n);
    return out;
  }

  FakeGuest guest_{4 << 20, kBase};
  DriverQueue rx_{guest_, 64, kBase, kBase + 0x1000, kBase + 0x2000};
  DriverQueue tx_{guest_, 64, kBase + 0x4000, kBase + 0x5000, kBase + 0x6000};
  CountingInterrupt irq_;
  UniqueFd host_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<VirtioConsole> console_;
  std::unique_ptr<MmioTransport> transport_;
  std::unique_ptr<MmioDriver> driver_;
  int eofs_ = 0;
  int next_rx_ = 0;
};

TEST_F(ConsoleTest, Identity) {
  EXPECT_EQ(driver_->Read32(mmio::kRegDeviceId), kDeviceIdConsole);
  EXPECT_EQ(driver_->DeviceFeatures(), FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc))
      << "no MULTIPORT, SIZE or EMERG_WRITE";
}

TEST_F(ConsoleTest, GuestToHost) {
  std::memcpy(guest_.At(kTxData), "hello ", 6);
  std::memcpy(guest_.At(kTxData + 100), "world", 5);
  tx_.Add({{kTxData, 6}, {kTxData + 100, 5}});
  driver_->Notify(console::kTransmitQueue);
  EXPECT_EQ(tx_.UsedIdx(), 1);
  EXPECT_EQ(tx_.Used(0).second, 0u) << "the device wrote nothing into a transmit buffer";
  EXPECT_EQ(driver_->AckInterrupts(), mmio::kInterruptUsedBuffer);
  EXPECT_EQ(HostRead(), "hello world");
}

TEST_F(ConsoleTest, HostToGuest) {
  PostRx(4, 1024);
  ASSERT_EQ(send(host_.get(), "ping", 4, 0), 4);
  ASSERT_TRUE(RunUntil([&] { return rx_.UsedIdx() >= 1; }));
  EXPECT_EQ(Received(1024), "ping");
  EXPECT_GE(irq_.count(), 1);
  // A message larger than one buffer spreads over several.
  std::string big(3000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(send(host_.get(), big.data(), big.size(), 0), static_cast<ssize_t>(big.size()));
  ASSERT_TRUE(RunUntil([&] { return Received(1024).size() == 4 + big.size(); }));
  EXPECT_EQ(Received(1024), "ping" + big);
}

TEST_F(ConsoleTest, NoReceiveBuffersMeansNoBusyLoopAndNothingLost) {
  ASSERT_EQ(send(host_.get(), "early", 5, 0), 5);
  // The device looks once, finds no buffers and stops watching the socket.
  Idle(1);
  EXPECT_EQ(Idle(10), 0) << "the loop must not spin on a readable fd it cannot serve";
  EXPECT_EQ(rx_.UsedIdx(), 0);
  PostRx(1, 64);
  ASSERT_TRUE(RunUntil([&] { return rx_.UsedIdx() == 1; }));
  EXPECT_EQ(Received(64), "early");
}

TEST_F(ConsoleTest, BackpressureWhenTheHostStopsReading) {
  int small = 4096;
  ASSERT_EQ(setsockopt(host_.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
  // 24 chains of 64 KiB: far more than the socket holds.
  constexpr int kChains = 24;
  constexpr uint32_t kChunk = 65536;
  std::string expected;
  for (int c = 0; c < kChains; ++c) {
    for (uint32_t i = 0; i < kChunk; ++i) {
      guest_.At(kTxData)[c * kChunk + i] = static_cast<uint8_t>(c * 31 + i % 251);
    }
    expected.append(reinterpret_cast<char*>(guest_.At(kTxData + c * kChunk)), kChunk);
    tx_.Add({{kTxData + c * kChunk, kChunk}});
  }
  driver_->Notify(console::kTransmitQueue);
  EXPECT_TRUE(console_->tx_blocked());
  const uint16_t used_when_blocked = tx_.UsedIdx();
  EXPECT_LT(used_when_blocked, kChains);
  // More notifications take nothing more while blocked.
  driver_->Notify(console::kTransmitQueue);
  Idle(3);
  EXPECT_EQ(tx_.UsedIdx(), used_when_blocked);

  // The host reads; the device thread resumes on EPOLLOUT until everything went out.
  std::string got;
  ASSERT_TRUE(RunUntil([&] {
    got += HostRead();
    return tx_.UsedIdx() == kChains && got.size() == expected.size();
  }));
  EXPECT_TRUE(got == expected) << "bytes lost or reordered";
  EXPECT_FALSE(console_->tx_blocked());
  EXPECT_EQ(Idle(5), 0) << "nothing left to watch";
}

TEST_F(ConsoleTest, HostEofAfterTheLastBytes) {
  PostRx(4, 256);
  ASSERT_EQ(send(host_.get(), "bye", 3, 0), 3);
  host_.Reset();
  ASSERT_TRUE(RunUntil([&] { return eofs_ == 1; }));
  EXPECT_EQ(Received(256), "bye");
  EXPECT_EQ(Idle(5), 0);
  EXPECT_EQ(eofs_, 1) << "reported once";
}

TEST_F(ConsoleTest, HostEofWithoutReceiveBuffers) {
  Idle(2);  // the device finds no receive buffers
  host_.Reset();
  ASSERT_TRUE(RunUntil([&] { return eofs_ == 1; }));
  EXPECT_EQ(Idle(5), 0);
}

TEST_F(ConsoleTest, GuestWritesAfterHostWentAwayAreDiscarded) {
  host_.Reset();
  tx_.Add({{kTxData, 100}});
  driver_->Notify(console::kTransmitQueue);
  EXPECT_EQ(tx_.UsedIdx(), 1);
  EXPECT_FALSE(transport_->broken());
}

TEST_F(ConsoleTest, MalformedTransmitQueueBreaksTheDevice) {
  tx_.Publish(200);  // head out of range
  driver_->Notify(console::kTransmitQueue);
  EXPECT_TRUE(transport_->broken());
  EXPECT_NE(driver_->Status() & kStatusDeviceNeedsReset, 0u);
  // Host bytes are no longer delivered.
  PostRx(2, 64);
  ASSERT_EQ(send(host_.get(), "x", 1, 0), 1);
  Idle(5);
  EXPECT_EQ(rx_.UsedIdx(), 0);
}

TEST_F(ConsoleTest, ResetStopsWatchingTheHost) {
  PostRx(2, 64);
  driver_->SetStatus(0);
  ASSERT_EQ(send(host_.get(), "x", 1, 0), 1);
  EXPECT_EQ(Idle(5), 0);
  EXPECT_EQ(rx_.UsedIdx(), 0);
}

}  // namespace
}  // namespace skiff::gen2::virtio
