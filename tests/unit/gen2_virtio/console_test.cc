// virtio-console as the control channel: bytes both ways through a socketpair standing in for
// the host's Unix socket, backpressure when the host stops reading, no busy loop when the
// guest has no receive buffers, EOF reported once, and a malformed queue.

#include "sandbox/gen2/devices/virtio/console.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

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
  EXPECT_EQ(driver_->DeviceFeatures(),
            FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc) | FeatureBit(kFRingEventIdx))
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

namespace skiff::gen2::virtio {
namespace {

// As in the VMM: the device thread runs the loop while a vCPU thread notifies, and the host
// end is busy both ways at once. 1 MiB each way arrives intact and in order.
TEST_F(ConsoleTest, DeviceThreadAndVcpuAtOnce) {
  constexpr size_t kBytes = 1 << 20;
  constexpr uint32_t kChunk = 16384;
  std::thread device_thread([&] { EXPECT_TRUE(loop_->Run().ok()); });
  std::string to_guest(kBytes, '\0');
  for (size_t i = 0; i < kBytes; ++i) to_guest[i] = static_cast<char>(i * 13 + i / 4096);
  std::string from_guest_got;
  std::thread host_thread([&] {
    size_t sent = 0;
    char buf[65536];
    while (sent < kBytes || from_guest_got.size() < kBytes) {
      pollfd pfd{host_.get(), static_cast<short>(POLLIN | (sent < kBytes ? POLLOUT : 0)), 0};
      if (poll(&pfd, 1, 5000) != 1) break;
      if (pfd.revents & POLLIN) {
        const ssize_t n = recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) from_guest_got.append(buf, n);
      }
      if ((pfd.revents & POLLOUT) && sent < kBytes) {
        const ssize_t n = send(host_.get(), to_guest.data() + sent,
                               std::min<size_t>(kBytes - sent, 8192), MSG_DONTWAIT);
        if (n > 0) sent += n;
      }
    }
  });
  // The vCPU: transmits 1 MiB in chunks from a rotating window and keeps 16 receive buffers
  // posted, copying out what arrives.
  std::string from_guest;
  for (size_t i = 0; i < kBytes; ++i) from_guest.push_back(static_cast<char>(i * 7 + i / 999));
  std::string to_guest_got;
  size_t tx_posted = 0;
  uint16_t tx_done = 0, rx_seen = 0, rx_posted = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((to_guest_got.size() < kBytes || tx_done < kBytes / kChunk) &&
         std::chrono::steady_clock::now() < deadline) {
    // Transmit: at most 16 chains in flight (slots in a 256 KiB window).
    tx_done = tx_.UsedIdx();
    while (tx_posted < kBytes / kChunk && tx_posted - tx_done < 16) {
      const uint64_t gpa = kTxData + (tx_posted % 16) * kChunk;
      std::memcpy(guest_.At(gpa), from_guest.data() + tx_posted * kChunk, kChunk);
      tx_.Add({{gpa, kChunk}});
      ++tx_posted;
      driver_->Notify(console::kTransmitQueue);
    }
    // Receive: copy out used buffers in order, then re-post.
    const uint16_t used = rx_.UsedIdx();
    for (; rx_seen != used; ++rx_seen) {
      auto [id, len] = rx_.Used(rx_seen);
      const uint64_t gpa = guest_.Get<uint64_t>(kBase + 16ull * id);
      to_guest_got.append(reinterpret_cast<char*>(guest_.At(gpa)), len);
    }
    bool posted = false;
    while (static_cast<uint16_t>(rx_posted - rx_seen) < 16) {
      rx_.Add({{kRxData + (rx_posted % 16) * 4096ull, 4096, true}});
      ++rx_posted;
      posted = true;
    }
    if (posted) driver_->Notify(console::kReceiveQueue);
    std::this_thread::yield();
  }
  host_thread.join();
  loop_->Stop();
  device_thread.join();
  EXPECT_EQ(to_guest_got.size(), kBytes);
  EXPECT_TRUE(to_guest_got == to_guest) << "host → guest bytes differ";
  EXPECT_EQ(from_guest_got.size(), kBytes);
  EXPECT_TRUE(from_guest_got == from_guest) << "guest → host bytes differ";
}

}  // namespace
}  // namespace skiff::gen2::virtio
