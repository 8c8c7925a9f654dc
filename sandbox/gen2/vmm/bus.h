#pragma once

// The VMM's two address spaces for device accesses the guest makes: port I/O (16-bit
// ports) and MMIO (guest-physical addresses outside RAM). A bus maps non-overlapping ranges
// to BusDevices; a vCPU thread that exits on an access asks the bus to dispatch it.
//
// Devices are registered during setup, before any vCPU runs; after that the bus is only
// read, from any number of vCPU threads at once, so it needs no lock. Devices are owned by
// whoever registered them (the Vmm) and must outlive the bus's use.
//
// An access no device claims is harmless: a port read returns all-ones (what an ISA bus
// with nothing on it returns, and what makes PCI config mechanism #1 at 0xcf8/0xcfc look
// absent), an MMIO read returns zeros, writes are dropped.

#include <cstdint>
#include <map>
#include <span>

#include "absl/status/status.h"
#include "sandbox/gen2/devices/bus_device.h"

namespace skiff::gen2 {

class Bus {
 public:
  enum class Kind { kPio, kMmio };

  explicit Bus(Kind kind) : kind_(kind) {}
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  // Claims [base, base + len) for `device`. INVALID_ARGUMENT for len 0 or a range that
  // wraps; ALREADY_EXISTS if it overlaps a range already claimed (naming both).
  absl::Status Register(uint64_t base, uint64_t len, BusDevice* device);

  // Dispatches an access of data.size() bytes at `addr`. An access that starts in a
  // device's range and runs past its end is dispatched as unclaimed.
  void Read(uint64_t addr, std::span<uint8_t> data) const;
  void Write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t len;
    BusDevice* device;
  };
  // The device whose range holds [addr, addr + size), with its offset; null if none.
  BusDevice* Find(uint64_t addr, uint64_t size, uint64_t* offset) const;

  Kind kind_;
  std::map<uint64_t, Range> ranges_;  // by base
};

}  // namespace skiff::gen2
