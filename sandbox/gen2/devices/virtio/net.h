#pragma once

// virtio-net (virtio 1.2, 5.1) over a tap fd (tap.h: IFF_TAP | IFF_NO_PI, no IFF_VNET_HDR).
// One receive and one transmit queue, no offloads, no control queue, no mergeable buffers.
// Offered: VERSION_1, RING_INDIRECT_DESC, RING_EVENT_IDX, NET_F_MAC (the configured MAC in config
// space) and NET_F_STATUS (link always up).
//
// Every buffer starts with the 12-byte struct virtio_net_hdr_v1 (VERSION_1 makes num_buffers
// part of it). Transmit: on the driver's notification (vCPU thread), each chain's frame after
// the header is written to the tap with one writev; a frame the tap refuses (or larger than
// kMaxFrame) is dropped, as a NIC drops. Receive: on the device thread, when the tap is
// readable, one frame per receive chain, after a header of zeros (num_buffers = 1, as the
// spec requires without MRG_RXBUF); a frame longer than the chain is truncated. When the guest
// has no receive buffers left, the tap is taken out of the EventLoop until the driver
// notifies the receive queue: no busy loop and nothing buffered on the host (the kernel's tap
// queue holds what waits, and drops beyond its length).
//
// A malformed queue, or a receive chain too short for the header, breaks the device.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/devices/event_loop.h"
#include "sandbox/gen2/devices/virtio/device.h"
#include "sandbox/gen2/devices/virtio/queue.h"

namespace skiff::gen2::virtio {

class VirtioNet final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  // The largest frame we transmit: a 64 KiB IP packet in an Ethernet frame with a VLAN tag.
  static constexpr uint64_t kMaxFrame = 65536 + 18;
  // Frames received per readiness event before the loop serves other fds.
  static constexpr int kRxBatch = 64;

  using Mac = std::array<uint8_t, 6>;

  // `tap` is made non-blocking. `loop` (the device thread's) must outlive the device, and the
  // device must be destroyed only after the loop's thread stopped running it.
  static absl::StatusOr<std::shared_ptr<VirtioNet>> Create(UniqueFd tap, const Mac& mac,
                                                           EventLoop* loop);
  ~VirtioNet() override;

  const char* name() const override { return "virtio-net"; }
  uint32_t device_type() const override;
  uint64_t offered_features() const override;
  std::span<const uint16_t> queue_max_sizes() const override { return kQueueMaxSizes; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint64_t, std::span<const uint8_t>) override {}
  absl::Status Activate(uint64_t acked_features, std::vector<Queue> queues,
                        VirtioInterrupt* interrupt) override;
  void Notify(uint32_t queue_index) override;
  void Reset() override;

  // Counters for tests and the log.
  uint64_t tx_dropped() const;

 private:
  static constexpr uint16_t kQueueMaxSizes[] = {kQueueSize, kQueueSize};

  VirtioNet(UniqueFd tap, const Mac& mac, EventLoop* loop)
      : tap_(std::move(tap)), mac_(mac), loop_(loop) {}

  void OnTapEvent(uint32_t events);  // device thread
  void ProcessTxLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ProcessRxLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetRxArmedLocked(bool armed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BreakLocked(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const UniqueFd tap_;
  const Mac mac_;
  EventLoop* const loop_;
  EventLoop::Token token_ = 0;  // set once in Create

  mutable absl::Mutex mu_;
  std::optional<Queue> rx_ ABSL_GUARDED_BY(mu_);
  std::optional<Queue> tx_ ABSL_GUARDED_BY(mu_);
  VirtioInterrupt* interrupt_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool rx_armed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t tx_dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace skiff::gen2::virtio
