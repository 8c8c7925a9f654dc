#include "sandbox/gen2/devices/virtio/net.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/devices/virtio/iovec.h"
#include "sandbox/gen2/devices/virtio/virtio.h"

namespace skiff::gen2::virtio {

absl::StatusOr<std::shared_ptr<VirtioNet>> VirtioNet::Create(UniqueFd tap, const Mac& mac,
                                                             EventLoop* loop) {
  const int flags = fcntl(tap.get(), F_GETFL);
  if (flags < 0 || fcntl(tap.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl(virtio-net tap, O_NONBLOCK)");
  }
  std::shared_ptr<VirtioNet> net(new VirtioNet(std::move(tap), mac, loop));
  // Registered disarmed: the tap is read only while the guest has receive buffers.
  VirtioNet* raw = net.get();
  SKIFF_ASSIGN_OR_RETURN(net->token_, loop->Register(net->tap_.get(), 0, [raw](uint32_t events) {
    raw->OnTapEvent(events);
  }));
  return net;
}

VirtioNet::~VirtioNet() { loop_->Unregister(token_).IgnoreError(); }

uint32_t VirtioNet::device_type() const { return kDeviceIdNet; }

uint64_t VirtioNet::offered_features() const {
  return FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc) | FeatureBit(net::kFMac) |
         FeatureBit(net::kFStatus) | FeatureBit(kFRingEventIdx);
}

void VirtioNet::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  // struct virtio_net_config: mac[6], status (le16).
  uint8_t config[8];
  std::memcpy(config, mac_.data(), 6);
  const uint16_t status = net::kSLinkUp;
  std::memcpy(config + 6, &status, 2);
  ReadConfigBytes(config, offset, data);
}

uint64_t VirtioNet::tx_dropped() const {
  absl::MutexLock lock(&mu_);
  return tx_dropped_;
}

absl::Status VirtioNet::Activate(uint64_t, std::vector<Queue> queues, VirtioInterrupt* interrupt) {
  if (queues.size() != 2) return absl::InvalidArgumentError("virtio-net: needs two queues");
  absl::MutexLock lock(&mu_);
  rx_.emplace(std::move(queues[net::kRxQueue]));
  tx_.emplace(std::move(queues[net::kTxQueue]));
  interrupt_ = interrupt;
  broken_ = false;
  SetRxArmedLocked(true);  // the driver usually fills the receive queue before DRIVER_OK
  return absl::OkStatus();
}

void VirtioNet::Reset() {
  absl::MutexLock lock(&mu_);
  SetRxArmedLocked(false);
  rx_.reset();
  tx_.reset();
  interrupt_ = nullptr;
  broken_ = false;
}

void VirtioNet::Notify(uint32_t queue_index) {
  absl::MutexLock lock(&mu_);
  if (!tx_.has_value() || broken_) return;
  if (queue_index == net::kTxQueue) {
    ProcessTxLocked();
  } else if (queue_index == net::kRxQueue) {
    SetRxArmedLocked(true);  // new receive buffers: the device thread reads the tap again
  }
}

void VirtioNet::SetRxArmedLocked(bool armed) {
  if (armed == rx_armed_) return;
  absl::Status s = loop_->Modify(token_, armed ? uint32_t{EPOLLIN} : 0u);
  if (!s.ok()) {
    spdlog::error("virtio-net: {} the tap: {}", armed ? "arming" : "disarming", s.ToString());
    return;
  }
  rx_armed_ = armed;
}

void VirtioNet::BreakLocked(const absl::Status& why) {
  broken_ = true;
  SetRxArmedLocked(false);
  interrupt_->MarkBroken(why);
}

void VirtioNet::OnTapEvent(uint32_t) {
  absl::MutexLock lock(&mu_);
  if (!rx_.has_value() || broken_) {
    SetRxArmedLocked(false);
    return;
  }
  ProcessRxLocked();
}

void VirtioNet::ProcessTxLocked() {
  for (;;) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = tx_->Pop();
    if (!chain.ok()) return BreakLocked(chain.status());
    if (!chain->has_value()) break;
    const DescriptorChain& c = **chain;
    const uint64_t frame =
        c.readable_bytes > net::kHeaderSize ? c.readable_bytes - net::kHeaderSize : 0;
    bool sent = false;
    if (frame > 0 && frame <= kMaxFrame) {
      const std::vector<std::span<uint8_t>> spans = c.ReadableSpans(net::kHeaderSize, frame);
      const std::vector<iovec> iov = ToIovecs(spans);
      if (iov.size() == spans.size()) {
        ssize_t n;
        do {
          n = writev(tap_.get(), iov.data(), static_cast<int>(iov.size()));
        } while (n < 0 && errno == EINTR);
        sent = n == static_cast<ssize_t>(frame);
      }
    }
    if (!sent) ++tx_dropped_;  // the tap's queue is full, its link is down, or a bad frame
    tx_->AddUsed(c.head, 0);
  }
  if (tx_->NeedsInterrupt()) interrupt_->SignalUsedBuffers();
}

void VirtioNet::ProcessRxLocked() {
  for (int i = 0; i < kRxBatch; ++i) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = rx_->Pop();
    if (!chain.ok()) return BreakLocked(chain.status());
    if (!chain->has_value()) {
      SetRxArmedLocked(false);  // until the driver adds receive buffers
      break;
    }
    const DescriptorChain& c = **chain;
    if (c.writable_bytes < net::kHeaderSize) {
      return BreakLocked(absl::InvalidArgumentError(
          absl::StrCat("virtio-net: receive chain ", c.head, " has ", c.writable_bytes,
                       " writable bytes, less than the 12-byte header")));
    }
    const uint64_t room = c.writable_bytes - net::kHeaderSize;
    const std::vector<iovec> iov = ToIovecs(c.WritableSpans(net::kHeaderSize, room));
    ssize_t n;
    do {
      n = readv(tap_.get(), iov.data(), static_cast<int>(iov.size()));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      const int err = errno;
      rx_->UndoPop();
      if (err != EAGAIN) {
        // Not expected from a tap; stop reading it until the driver next adds buffers rather
        // than spin on an fd that stays readable.
        spdlog::warn("virtio-net: readv(tap): {}", strerror(err));
        SetRxArmedLocked(false);
      }
      break;
    }
    // struct virtio_net_hdr_v1 with no offloads: all zero but num_buffers, which is 1.
    uint8_t header[net::kHeaderSize] = {};
    header[10] = 1;
    c.WriteTo(0, header);
    const uint64_t len = net::kHeaderSize + std::min<uint64_t>(static_cast<uint64_t>(n), room);
    rx_->AddUsed(c.head, static_cast<uint32_t>(len));
  }
  if (rx_->NeedsInterrupt()) interrupt_->SignalUsedBuffers();
}

}  // namespace skiff::gen2::virtio
