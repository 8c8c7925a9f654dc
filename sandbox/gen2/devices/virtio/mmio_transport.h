#pragma once

// The virtio-mmio transport, version 2 ("modern" only; virtio 1.2, 4.2.2), as a BusDevice the
// VMM registers on its MMIO bus at layout::VirtioMmioAddr(slot) with length
// layout::kVirtioMmioSlotSize, announced to Linux as
// `virtio_mmio.device=4K@<addr>:<irq>`.
//
// It owns the registers and their rules: feature negotiation (the driver must accept
// VIRTIO_F_VERSION_1 and nothing the device did not offer, else FEATURES_OK does not stick),
// queue selection and configuration (writable only between FEATURES_OK and DRIVER_OK),
// DRIVER_OK (every queue must be ready and valid: the transport builds the validated Queues
// and activates the device), QueueNotify, InterruptStatus / InterruptACK, Status (writing 0
// resets the device; other writes may only add bits), ConfigGeneration, and the device's
// configuration space at 0x100. Registers take aligned 32-bit accesses; others read as zero
// and are ignored when written. A device the driver broke shows DEVICE_NEEDS_RESET in Status
// and gets no more notifications until the driver resets it.
//
// Thread-safe: vCPU threads may access it concurrently (one mutex per transport). Interrupts
// go to the `Interrupt` after the InterruptStatus bits are set.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/gen2/devices/bus_device.h"
#include "sandbox/gen2/devices/virtio/device.h"
#include "sandbox/gen2/devices/virtio/queue.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::virtio {

class MmioTransport final : public BusDevice {
 public:
  // The vendor id in the VendorID register ("SKF\0"; any value is allowed by the spec).
  static constexpr uint32_t kVendorId = 0x00464b53;

  // `memory` and `irq` must outlive the transport.
  MmioTransport(const GuestMemory& memory, std::shared_ptr<VirtioDevice> device, Interrupt* irq);
  ~MmioTransport() override;  // resets the device
  MmioTransport(const MmioTransport&) = delete;
  MmioTransport& operator=(const MmioTransport&) = delete;

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // The same as the driver writing `queue` to QueueNotify, for a VMM that routes QueueNotify
  // through an ioeventfd (KVM_IOEVENTFD at base + 0x50 with datamatch per queue) and calls
  // this from its device thread instead of taking the MMIO exit.
  void NotifyQueue(uint32_t queue);

  VirtioDevice& device() const { return *device_; }
  // Status as the driver reads it (DEVICE_NEEDS_RESET included).
  uint32_t status() const;
  uint32_t interrupt_status() const { return signals_.interrupt_status.load(); }
  bool broken() const { return signals_.broken.load(); }

 private:
  // The VirtioInterrupt handed to the device: atomics only, so callable from any thread.
  struct Signals final : VirtioInterrupt {
    void SignalUsedBuffers() override;
    void SignalConfigChange() override;
    void MarkBroken(const absl::Status& why) override;
    void Raise(uint32_t bits);

    Interrupt* irq = nullptr;
    const char* device_name = "";
    std::atomic<uint32_t> interrupt_status{0};
    std::atomic<bool> broken{false};
    std::atomic<bool> logged_broken{false};
    std::atomic<uint32_t> config_generation{0};  // bumped on every config change
  };

  uint32_t ReadRegister(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegister(uint64_t offset, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteStatus(uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FeaturesAcceptable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ActivateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  QueueConfig* SelectedQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool QueueRegistersWritable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GuestMemory& memory_;
  const std::shared_ptr<VirtioDevice> device_;
  const std::vector<uint16_t> queue_max_sizes_;
  Signals signals_;

  mutable absl::Mutex mu_;
  uint32_t status_ ABSL_GUARDED_BY(mu_) = 0;
  bool active_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t device_features_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t driver_features_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t driver_features_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t queue_sel_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<QueueConfig> queues_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skiff::gen2::virtio
