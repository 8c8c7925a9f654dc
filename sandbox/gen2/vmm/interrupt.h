#pragma once

// Interrupt (devices/bus_device.h) on the in-kernel irqchip, two ways:
//   IrqfdInterrupt — an eventfd registered with KVM_IRQFD; Trigger() is one write(2) and
//     KVM injects an edge on the GSI. What devices use.
//   IrqLineInterrupt — KVM_IRQ_LINE high then low (an edge); for when no eventfd is wanted.
// Both are safe to trigger from any thread; a failure is counted, never fatal (the guest
// only misses an interrupt it will see on its next poll of the device).

#include <atomic>
#include <cstdint>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/devices/bus_device.h"
#include "sandbox/gen2/vmm/kvm.h"

namespace skiff::gen2 {

class IrqfdInterrupt : public Interrupt {
 public:
  explicit IrqfdInterrupt(UniqueFd eventfd) : eventfd_(std::move(eventfd)) {}
  void Trigger() override;
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  UniqueFd eventfd_;
  std::atomic<uint64_t> failures_{0};
};

class IrqLineInterrupt : public Interrupt {
 public:
  // `vm` must outlive this.
  IrqLineInterrupt(const Vm* vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void Trigger() override;
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  const Vm* vm_;
  uint32_t gsi_;
  std::atomic<uint64_t> failures_{0};
};

}  // namespace skiff::gen2
