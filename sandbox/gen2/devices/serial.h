#pragma once

// An 8250/16550A UART as COM1 (layout::kCom1Port, 8 ports, IRQ layout::kCom1Irq): enough
// of the chip for Linux's 8250 driver and for a polling guest. Bytes the guest transmits go
// to an output fd (the instance's console log) as they are written, or nowhere in quiet
// mode; bytes queued with QueueInput() are what the guest receives. The THRE ("transmitter
// empty") and RDA ("received data available") interrupts are raised on an Interrupt when
// the guest enables them in IER. The loopback mode of MCR is modelled because Linux's
// probe checks it.
//
// Called from vCPU threads (and QueueInput from any thread): all state is under mu_. The
// output fd is not owned and must stay open while the device is used.

#include <cstdint>
#include <deque>
#include <span>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/gen2/devices/bus_device.h"

namespace skiff::gen2 {

class Serial : public BusDevice {
 public:
  // `out_fd` < 0 is quiet mode: transmitted bytes are dropped. `irq` may be null (no
  // interrupts are raised).
  Serial(int out_fd, Interrupt* irq) : out_fd_(out_fd), irq_(irq) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Bytes for the guest to receive (raises RDA if enabled).
  void QueueInput(std::span<const uint8_t> bytes);

  // Bytes transmitted so far (quiet mode included).
  uint64_t bytes_transmitted() const;

 private:
  uint8_t ReadRegister(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns true if an interrupt should be raised.
  bool WriteRegister(uint64_t offset, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Transmit(uint8_t byte) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t InterruptIdentification() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool InterruptPending() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int out_fd_;
  Interrupt* const irq_;

  mutable absl::Mutex mu_;
  uint8_t ier_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t lcr_ ABSL_GUARDED_BY(mu_) = 0x03;  // 8N1
  uint8_t mcr_ ABSL_GUARDED_BY(mu_) = 0x08;  // OUT2
  uint8_t scr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t fcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t dll_ ABSL_GUARDED_BY(mu_) = 0x0c;  // 9600 baud
  uint8_t dlm_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t msr_ ABSL_GUARDED_BY(mu_) = 0xb0;  // DCD, DSR, CTS
  // THRE interrupt pending: set when the holding register empties, cleared by reading
  // IIR while it is the reported cause, or by writing THR.
  bool thre_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<uint8_t> rx_ ABSL_GUARDED_BY(mu_);
  uint64_t transmitted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace skiff::gen2
