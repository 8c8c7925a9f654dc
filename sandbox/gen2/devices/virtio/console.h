#pragma once

// The host↔guest control channel as a virtio-console (virtio 1.2, 5.3) with one port and no
// features beyond VERSION_1, RING_INDIRECT_DESC and RING_EVENT_IDX (no MULTIPORT, SIZE or
// EMERG_WRITE): receiveq 0 carries host → guest bytes, transmitq 1 guest → host bytes. It is a
// plain byte pipe to a host stream fd (a connected Unix socket); the protocol on top is someone
// else's. In Linux the guest sees it as /dev/hvc0.
//
// Guest → host: on the driver's notification (vCPU thread) each transmit chain's bytes are
// sent straight from guest memory. When the socket is full the chain being sent is kept
// (the bytes stay in guest memory, nothing is copied to the host), no further transmit chains
// are taken, and the device thread resumes when the EventLoop reports the socket writable.
// The host holds at most that one chain; the guest's driver sees its transmit queue fill up.
// If the host end is gone (EPIPE), the guest's bytes are discarded.
//
// Host → guest: on the device thread, when the socket is readable and the guest has receive
// buffers, bytes are read straight into them. With no receive buffers the socket is taken out
// of the EventLoop until the driver notifies the receive queue.
//
// End of the host stream: reported once through `on_host_eof` (called on the device thread,
// with no lock held), after every byte before it was delivered to the guest; if the guest has
// no receive buffers when the peer hangs up and nothing is left unread, it is reported at
// once.

#include <cstdint>
#include <functional>
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

class VirtioConsole final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 64;
  // Receive chains filled per readiness event before the loop serves other fds.
  static constexpr int kRxBatch = 64;

  // `host` (a connected stream socket) is made non-blocking. `loop` must outlive the device,
  // and the device must be destroyed only after the loop's thread stopped running it.
  static absl::StatusOr<std::shared_ptr<VirtioConsole>> Create(UniqueFd host, EventLoop* loop,
                                                               std::function<void()> on_host_eof);
  ~VirtioConsole() override;

  const char* name() const override { return "virtio-console"; }
  uint32_t device_type() const override;
  uint64_t offered_features() const override;
  std::span<const uint16_t> queue_max_sizes() const override { return kQueueMaxSizes; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint64_t, std::span<const uint8_t>) override {}
  absl::Status Activate(uint64_t acked_features, std::vector<Queue> queues,
                        VirtioInterrupt* interrupt) override;
  void Notify(uint32_t queue_index) override;
  void Reset() override;

  // True while a transmit chain waits for the host socket to drain (for tests).
  bool tx_blocked() const;

 private:
  static constexpr uint16_t kQueueMaxSizes[] = {kQueueSize, kQueueSize};

  VirtioConsole(UniqueFd host, EventLoop* loop, std::function<void()> on_host_eof)
      : host_(std::move(host)), loop_(loop), on_host_eof_(std::move(on_host_eof)) {}

  void OnHostEvent(uint32_t events);  // device thread
  void ProcessTxLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ProcessRxLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Peer hung up while we cannot read: EOF now if nothing is left unread.
  void CheckHangupLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BreakLocked(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls on_host_eof_ once if EOF was seen; call without mu_ held.
  void ReportEof();

  const UniqueFd host_;
  EventLoop* const loop_;
  const std::function<void()> on_host_eof_;
  EventLoop::Token token_ = 0;  // set once in Create

  mutable absl::Mutex mu_;
  std::optional<Queue> rx_ ABSL_GUARDED_BY(mu_);
  std::optional<Queue> tx_ ABSL_GUARDED_BY(mu_);
  VirtioInterrupt* interrupt_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  // The transmit chain being sent and how much of it went out.
  std::optional<DescriptorChain> tx_pending_ ABSL_GUARDED_BY(mu_);
  uint64_t tx_sent_ ABSL_GUARDED_BY(mu_) = 0;
  bool tx_blocked_ ABSL_GUARDED_BY(mu_) = false;  // waiting for EPOLLOUT
  bool host_write_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool rx_wanted_ ABSL_GUARDED_BY(mu_) = false;    // the guest may have receive buffers
  bool hangup_seen_ ABSL_GUARDED_BY(mu_) = false;  // EPOLLRDHUP/EPOLLHUP came once
  bool host_eof_ ABSL_GUARDED_BY(mu_) = false;
  bool eof_reported_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t interest_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace skiff::gen2::virtio
