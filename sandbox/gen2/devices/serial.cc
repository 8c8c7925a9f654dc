#include "sandbox/gen2/devices/serial.h"

#include <unistd.h>

#include <cerrno>

namespace skiff::gen2 {
namespace {

// Register offsets from the base port.
constexpr uint64_t kData = 0;  // RBR (read) / THR (write); DLL when LCR.DLAB
constexpr uint64_t kIer = 1;   // DLM when LCR.DLAB
constexpr uint64_t kIir = 2;   // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kIerRda = 0x01;
constexpr uint8_t kIerThre = 0x02;
constexpr uint8_t kIerMask = 0x0f;
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirRda = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrFifoEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
constexpr size_t kRxLimit = 64 * 1024;

}  // namespace

void Serial::Read(uint64_t offset, std::span<uint8_t> data) {
  if (data.empty()) return;
  bool raise = false;
  {
    absl::MutexLock lock(&mu_);
    const bool was_pending = InterruptPending();
    // Wider accesses read the one register; the rest of the bytes are all-ones.
    for (size_t i = 0; i < data.size(); ++i) data[i] = i == 0 ? ReadRegister(offset) : 0xff;
    raise = !was_pending && InterruptPending();
  }
  if (raise && irq_) irq_->Trigger();
}

void Serial::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) return;
  bool raise = false;
  {
    absl::MutexLock lock(&mu_);
    raise = WriteRegister(offset, data[0]);
  }
  if (raise && irq_) irq_->Trigger();
}

void Serial::QueueInput(std::span<const uint8_t> bytes) {
  bool raise = false;
  {
    absl::MutexLock lock(&mu_);
    for (uint8_t b : bytes) {
      if (rx_.size() >= kRxLimit) break;
      rx_.push_back(b);
    }
    raise = !bytes.empty() && (ier_ & kIerRda) != 0;
  }
  if (raise && irq_) irq_->Trigger();
}

uint64_t Serial::bytes_transmitted() const {
  absl::MutexLock lock(&mu_);
  return transmitted_;
}

bool Serial::InterruptPending() const {
  return ((ier_ & kIerRda) && !rx_.empty()) || ((ier_ & kIerThre) && thre_pending_);
}

uint8_t Serial::InterruptIdentification() {
  const uint8_t fifo = (fcr_ & kFcrFifoEnable) ? kIirFifoEnabled : 0;
  if ((ier_ & kIerRda) && !rx_.empty()) return fifo | kIirRda;
  if ((ier_ & kIerThre) && thre_pending_) {
    thre_pending_ = false;  // reading IIR with THRE as the cause acknowledges it
    return fifo | kIirThre;
  }
  return fifo | kIirNone;
}

uint8_t Serial::ReadRegister(uint64_t offset) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData: {
      if (dlab) return dll_;
      if (rx_.empty()) return 0;
      const uint8_t b = rx_.front();
      rx_.pop_front();
      return b;
    }
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIir:
      return InterruptIdentification();
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return kLsrThrEmpty | kLsrIdle | (rx_.empty() ? 0 : kLsrDataReady);
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
        return static_cast<uint8_t>(((mcr_ & 0x02) << 3) | ((mcr_ & 0x01) << 5) |
                                    ((mcr_ & 0x04) << 4) | ((mcr_ & 0x08) << 4));
      }
      return msr_;
    case kScr:
      return scr_;
    default:
      return 0xff;
  }
}

bool Serial::WriteRegister(uint64_t offset, uint8_t value) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData:
      if (dlab) {
        dll_ = value;
        return false;
      }
      if (mcr_ & kMcrLoop) {
        if (rx_.size() < kRxLimit) rx_.push_back(value);
        return (ier_ & kIerRda) != 0;
      }
      Transmit(value);
      // The byte left at once: the holding register is empty again.
      thre_pending_ = true;
      return (ier_ & kIerThre) != 0;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return false;
      } else {
        const bool thre_newly_enabled = !(ier_ & kIerThre) && (value & kIerThre);
        ier_ = value & kIerMask;
        // Enabling THRE while the holding register is empty interrupts at once (the
        // driver's transmit path relies on it).
        if (thre_newly_enabled) thre_pending_ = true;
        return InterruptPending();
      }
    case kIir:
      fcr_ = value;
      if (value & kFcrClearRx) rx_.clear();
      return false;
    case kLcr:
      lcr_ = value;
      return false;
    case kMcr:
      mcr_ = value & 0x1f;
      return false;
    case kScr:
      scr_ = value;
      return false;
    default:  // LSR and MSR are read-only
      return false;
  }
}

void Serial::Transmit(uint8_t byte) {
  ++transmitted_;
  if (out_fd_ < 0) return;
  // A write that fails (a closed reader, a full non-blocking pipe) loses the byte. A
  // blocking fd whose reader stalls stalls this vCPU: the instance log is a file.
  for (;;) {
    const ssize_t n = ::write(out_fd_, &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

}  // namespace skiff::gen2
