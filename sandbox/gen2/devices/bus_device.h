#pragma once

// What the VMM's port-I/O and MMIO buses dispatch to. A device is registered on a bus at a
// base address with a length; it sees offsets relative to that base, and accesses of 1, 2,
// 4 or 8 bytes as the guest made them. Calls come from vCPU threads (several at once when
// the guest has several vCPUs): a device guards its own state.
//
// A device never fails the VMM: an access it does not understand reads as all-ones (port
// I/O) or zeros (MMIO registers) and a write is ignored, with at most a rate-limited log.

#include <cstdint>
#include <span>

namespace skiff::gen2 {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// An interrupt line of one device. The VMM implements it on the in-kernel IOAPIC
// (KVM_IRQ_LINE pulse or an irqfd); tests count calls. Trigger() is edge-like: the device
// sets its interrupt status first, then triggers; callable from any thread.
class Interrupt {
 public:
  virtual ~Interrupt() = default;
  virtual void Trigger() = 0;
};

}  // namespace skiff::gen2
