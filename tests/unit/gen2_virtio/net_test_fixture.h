#pragma once

// A virtio-net device on a given host fd (a datagram socketpair or a real tap), an EventLoop
// driven by the test thread, and the driver's side of its two queues.

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "sandbox/gen2/devices/event_loop.h"
#include "sandbox/gen2/devices/virtio/mmio_transport.h"
#include "sandbox/gen2/devices/virtio/net.h"
#include "sandbox/gen2/devices/virtio/virtio.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/gen2_virtio/virtio_test_driver.h"

namespace skiff::gen2::virtio::testing {

inline constexpr uint64_t kNetBase = 0x10000;
inline constexpr uint64_t kNetRxData = kNetBase + 0x10000;  // 2 KiB per receive buffer
inline constexpr uint64_t kNetTxData = kNetBase + 0x80000;
inline constexpr VirtioNet::Mac kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

class NetFixture {
 public:
  // Sets up everything on `host_fd`; check ok() after.
  void Start(UniqueFd host_fd) {
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    absl::StatusOr<std::shared_ptr<VirtioNet>> net =
        VirtioNet::Create(std::move(host_fd), kGuestMac, loop_.get());
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = *net;
    transport_ = std::make_unique<MmioTransport>(guest_.memory(), net_, &irq_);
    driver_ = std::make_unique<MmioDriver>(*transport_);
    SKIFF_ASSERT_OK(driver_->Init(~uint64_t{0}, {rx_.config(), tx_.config()}));
  }
  void Stop() {
    transport_.reset();
    net_.reset();
  }

  template <typename Pred>
  bool RunUntil(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (!loop_->RunOnce(10).ok()) return false;
    }
    return true;
  }
  int Idle(int rounds) {
    int ran = 0;
    for (int i = 0; i < rounds; ++i) ran += loop_->RunOnce(10).value_or(0);
    return ran;
  }

  void PostRx(int n, uint32_t size = 2048) {
    for (int i = 0; i < n; ++i) {
      rx_.Add({{kNetRxData + 2048ull * (next_rx_++ % 64), size, true}});
    }
    driver_->Notify(net::kRxQueue);
  }
  // Transmits `frame` behind a zeroed virtio_net_hdr_v1, header and frame in separate buffers.
  void Transmit(const std::string& frame) {
    std::memset(guest_.At(kNetTxData), 0, net::kHeaderSize);
    std::memcpy(guest_.At(kNetTxData + 64), frame.data(), frame.size());
    tx_.Add({{kNetTxData, static_cast<uint32_t>(net::kHeaderSize)},
             {kNetTxData + 64, static_cast<uint32_t>(frame.size())}});
    driver_->Notify(net::kTxQueue);
  }
  // The header and frame in used receive buffer `i`.
  std::pair<std::string, std::string> Received(uint16_t i) {
    auto [id, len] = rx_.Used(i);
    const uint64_t gpa = guest_.Get<uint64_t>(kNetBase + 16ull * id);
    const char* p = reinterpret_cast<const char*>(guest_.At(gpa));
    if (len < net::kHeaderSize) return {};
    return {std::string(p, net::kHeaderSize),
            std::string(p + net::kHeaderSize, len - net::kHeaderSize)};
  }

  FakeGuest guest_{1 << 20, kNetBase};
  DriverQueue rx_{guest_, 64, kNetBase, kNetBase + 0x1000, kNetBase + 0x2000};
  DriverQueue tx_{guest_, 64, kNetBase + 0x4000, kNetBase + 0x5000, kNetBase + 0x6000};
  CountingInterrupt irq_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<VirtioNet> net_;
  std::unique_ptr<MmioTransport> transport_;
  std::unique_ptr<MmioDriver> driver_;
  int next_rx_ = 0;
};

// The header the device writes on receive: zeros, num_buffers = 1.
inline std::string RxHeader() {
  std::string h(net::kHeaderSize, '\0');
  h[10] = 1;
  return h;
}

}  // namespace skiff::gen2::virtio::testing
