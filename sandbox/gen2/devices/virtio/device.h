#pragma once

// The split between a virtio device and its transport (Firecracker's VirtioDevice /
// MmioTransport, kvmtool's one device per file). The transport (mmio_transport.h) owns the
// registers: feature negotiation, queue configuration, status, interrupt status. A device
// owns its function (blk, net, console): it says what it offers, and once the driver has set
// DRIVER_OK it receives the acked features and the validated queues, and is notified.
//
// Threads: Notify() and the config accessors come from vCPU threads (several at once),
// Activate() and Reset() from the vCPU thread that wrote the status register, and a device
// with a host fd also runs on the VMM's device thread (the EventLoop). A device guards its
// own state with its own mutex. The transport calls Activate, Notify and Reset with its own
// lock held; its VirtioInterrupt is lock-free, so a device may signal from any thread with
// its own lock held. A device never calls the transport's BusDevice methods.

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "sandbox/gen2/devices/virtio/queue.h"

namespace skiff::gen2::virtio {

// How an active device reaches its driver. Implemented by the transport; lock-free and
// callable from any thread.
class VirtioInterrupt {
 public:
  virtual ~VirtioInterrupt() = default;
  // The device put buffers in a used ring: sets the "used buffer" interrupt status bit and
  // raises the interrupt line.
  virtual void SignalUsedBuffers() = 0;
  // The device's configuration space changed.
  virtual void SignalConfigChange() = 0;
  // The driver broke the device (a malformed queue, `why`): sets DEVICE_NEEDS_RESET in the
  // status, raises a configuration-change interrupt and logs `why` once. Until the driver
  // resets the device, the transport forwards no more notifications; the device itself must
  // also stop touching its queues. The VMM carries on.
  virtual void MarkBroken(const absl::Status& why) = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  // For the log: "virtio-blk", "virtio-net", ...
  virtual const char* name() const = 0;
  // The virtio device id (virtio.h: kDeviceId*).
  virtual uint32_t device_type() const = 0;
  // Every feature bit the device offers, VIRTIO_F_VERSION_1 included (the transport refuses
  // drivers that do not accept it).
  virtual uint64_t offered_features() const = 0;
  // One entry per queue: the largest size the driver may configure (a power of two).
  virtual std::span<const uint16_t> queue_max_sizes() const = 0;

  // The device-specific configuration space (at 0x100 of the MMIO window). Bytes beyond
  // the device's config read as zero; writes there are ignored.
  virtual void ReadConfig(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void WriteConfig(uint64_t offset, std::span<const uint8_t> data) = 0;

  // The driver set DRIVER_OK. `queues` has one validated queue per queue_max_sizes() entry.
  // `interrupt` stays valid until Reset() returns. An error leaves the device inactive (the
  // transport then marks it broken).
  virtual absl::Status Activate(uint64_t acked_features, std::vector<Queue> queues,
                                VirtioInterrupt* interrupt) = 0;
  // The driver notified queue `queue_index` (only while active, not broken, and the index
  // is below queue_max_sizes().size()).
  virtual void Notify(uint32_t queue_index) = 0;
  // The driver wrote 0 to the status register (or the transport is going away): drop the
  // queues and the interrupt, stop all I/O on the guest's behalf. The device can be
  // activated again afterwards. Also called when the device is not active.
  virtual void Reset() = 0;
};

// Reads `data.size()` bytes at `offset` of a device's config struct `config`; bytes past
// its end read as zero.
inline void ReadConfigBytes(std::span<const uint8_t> config, uint64_t offset,
                            std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset < config.size() && i < config.size() - offset ? config[offset + i] : 0;
  }
}

}  // namespace skiff::gen2::virtio
