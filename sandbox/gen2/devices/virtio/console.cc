#include "sandbox/gen2/devices/virtio/console.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "sandbox/common/status.h"
#include "sandbox/gen2/devices/virtio/iovec.h"
#include "sandbox/gen2/devices/virtio/virtio.h"

namespace skiff::gen2::virtio {

absl::StatusOr<std::shared_ptr<VirtioConsole>> VirtioConsole::Create(
    UniqueFd host, EventLoop* loop, std::function<void()> on_host_eof) {
  const int flags = fcntl(host.get(), F_GETFL);
  if (flags < 0 || fcntl(host.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl(virtio-console host fd, O_NONBLOCK)");
  }
  std::shared_ptr<VirtioConsole> console(
      new VirtioConsole(std::move(host), loop, std::move(on_host_eof)));
  VirtioConsole* raw = console.get();
  SKIFF_ASSIGN_OR_RETURN(console->token_,
                         loop->Register(console->host_.get(), 0,
                                        [raw](uint32_t events) { raw->OnHostEvent(events); }));
  return console;
}

VirtioConsole::~VirtioConsole() { loop_->Unregister(token_).IgnoreError(); }

uint32_t VirtioConsole::device_type() const { return kDeviceIdConsole; }

uint64_t VirtioConsole::offered_features() const {
  return FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc) | FeatureBit(kFRingEventIdx);
}

void VirtioConsole::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  // struct virtio_console_config (cols, rows, max_nr_ports, emerg_wr): none of its features
  // are offered, so all zero.
  const uint8_t config[12] = {};
  ReadConfigBytes(config, offset, data);
}

bool VirtioConsole::tx_blocked() const {
  absl::MutexLock lock(&mu_);
  return tx_blocked_;
}

absl::Status VirtioConsole::Activate(uint64_t, std::vector<Queue> queues,
                                     VirtioInterrupt* interrupt) {
  if (queues.size() != 2) return absl::InvalidArgumentError("virtio-console: needs two queues");
  absl::MutexLock lock(&mu_);
  rx_.emplace(std::move(queues[console::kReceiveQueue]));
  tx_.emplace(std::move(queues[console::kTransmitQueue]));
  interrupt_ = interrupt;
  broken_ = false;
  rx_wanted_ = true;
  UpdateInterestLocked();
  return absl::OkStatus();
}

void VirtioConsole::Reset() {
  absl::MutexLock lock(&mu_);
  rx_.reset();
  tx_.reset();
  interrupt_ = nullptr;
  broken_ = false;
  tx_pending_.reset();  // its bytes stay unsent: the driver reset the device under them
  tx_sent_ = 0;
  tx_blocked_ = false;
  rx_wanted_ = false;
  UpdateInterestLocked();
}

void VirtioConsole::Notify(uint32_t queue_index) {
  {
    absl::MutexLock lock(&mu_);
    if (!tx_.has_value() || broken_) return;
    if (queue_index == console::kTransmitQueue) {
      if (!tx_blocked_) ProcessTxLocked();  // else the device thread resumes on EPOLLOUT
    } else if (queue_index == console::kReceiveQueue) {
      rx_wanted_ = true;
    }
    UpdateInterestLocked();
  }
}

void VirtioConsole::UpdateInterestLocked() {
  uint32_t want = 0;
  const bool rx_alive = rx_.has_value() && !broken_ && !host_eof_;
  if (rx_alive && rx_wanted_) want |= EPOLLIN | EPOLLRDHUP;
  // Without receive buffers, still hear a hang-up once (to report EOF if nothing is unread).
  if (rx_alive && !rx_wanted_ && !hangup_seen_) want |= EPOLLRDHUP;
  if (tx_.has_value() && !broken_ && tx_blocked_) want |= EPOLLOUT;
  if (want == interest_) return;
  absl::Status s = loop_->Modify(token_, want);
  if (!s.ok()) {
    spdlog::error("virtio-console: watching the host fd: {}", s.ToString());
    return;
  }
  interest_ = want;
}

void VirtioConsole::BreakLocked(const absl::Status& why) {
  broken_ = true;
  tx_pending_.reset();
  UpdateInterestLocked();
  interrupt_->MarkBroken(why);
}

void VirtioConsole::ReportEof() {
  {
    absl::MutexLock lock(&mu_);
    if (!host_eof_ || eof_reported_) return;
    eof_reported_ = true;
  }
  if (on_host_eof_) on_host_eof_();
}

void VirtioConsole::OnHostEvent(uint32_t events) {
  {
    absl::MutexLock lock(&mu_);
    if (!tx_.has_value() || broken_) {
      UpdateInterestLocked();
      return;
    }
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0 && tx_blocked_) {
      tx_blocked_ = false;
      ProcessTxLocked();
    }
    if (!broken_ && rx_wanted_ && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
      ProcessRxLocked();
    }
    if (!broken_ && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
      hangup_seen_ = true;
      if (!rx_wanted_ && !host_eof_) CheckHangupLocked();
    }
    UpdateInterestLocked();
  }
  ReportEof();
}

void VirtioConsole::CheckHangupLocked() {
  char byte;
  const ssize_t n = recv(host_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) host_eof_ = true;
}

void VirtioConsole::ProcessTxLocked() {
  bool used = false;
  while (!tx_blocked_) {
    if (!tx_pending_.has_value()) {
      absl::StatusOr<std::optional<DescriptorChain>> chain = tx_->Pop();
      if (!chain.ok()) return BreakLocked(chain.status());
      if (!chain->has_value()) break;
      tx_pending_ = std::move(**chain);
      tx_sent_ = 0;
    }
    const uint64_t left = tx_pending_->readable_bytes - tx_sent_;
    if (left > 0 && !host_write_closed_) {
      std::vector<iovec> iov = ToIovecs(tx_pending_->ReadableSpans(tx_sent_, left));
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = iov.size();
      const ssize_t n = sendmsg(host_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          tx_blocked_ = true;  // keep the chain; resume on EPOLLOUT
          break;
        }
        // EPIPE, ECONNRESET, ...: the host end is gone; the guest's bytes go nowhere.
        host_write_closed_ = true;
        continue;
      }
      tx_sent_ += static_cast<uint64_t>(n);
      if (tx_sent_ < tx_pending_->readable_bytes) continue;
    }
    tx_->AddUsed(tx_pending_->head, 0);
    tx_pending_.reset();
    used = true;
  }
  if (used && tx_->NeedsInterrupt()) interrupt_->SignalUsedBuffers();
}

void VirtioConsole::ProcessRxLocked() {
  for (int i = 0; i < kRxBatch && !host_eof_; ++i) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = rx_->Pop();
    if (!chain.ok()) return BreakLocked(chain.status());
    if (!chain->has_value()) {
      rx_wanted_ = false;  // until the driver adds receive buffers
      CheckHangupLocked();
      break;
    }
    const DescriptorChain& c = **chain;
    if (c.writable_bytes == 0) {
      rx_->AddUsed(c.head, 0);
      continue;
    }
    std::vector<iovec> iov = ToIovecs(c.WritableSpans(0, c.writable_bytes));
    ssize_t n;
    do {
      n = readv(host_.get(), iov.data(), static_cast<int>(iov.size()));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
      rx_->UndoPop();
      break;
    }
    if (n <= 0) {
      rx_->UndoPop();
      host_eof_ = true;  // EOF, or an error that ends the stream (ECONNRESET)
      break;
    }
    rx_->AddUsed(c.head, static_cast<uint32_t>(n));
  }
  if (rx_->NeedsInterrupt()) interrupt_->SignalUsedBuffers();
}

}  // namespace skiff::gen2::virtio
