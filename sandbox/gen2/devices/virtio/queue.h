#pragma once

// The split virtqueue (virtio 1.2, 2.7) seen from the device side: the descriptor table, the
// available ring and the used ring at the guest-physical addresses the driver configured.
//
// The guest is hostile and runs concurrently with us. Every value read from guest memory is
// copied once and the copy validated before use: queue size (a power of two, at most the
// device's maximum), ring addresses (aligned, entirely inside guest memory), descriptor
// indices (< queue size), chain length (at most the queue size, which also catches loops),
// indirect tables (VIRTIO_RING_F_INDIRECT_DESC: length a nonzero multiple of 16, inside guest
// memory, no nested indirect, their own chain bound), every buffer (addr + len inside guest
// memory, overflow included), device-readable buffers before device-writable ones, and the
// available index (never more than the queue size ahead of what we consumed). A violation is
// an error naming the queue, the descriptor and the value; the device then marks itself
// broken (see device.h) and never touches the queue again.
//
// Ring indices are read with acquire loads and the used index is published with a release
// store; the check whether the driver wants an interrupt comes after a full fence.
//
// VIRTIO_RING_F_EVENT_IDX (2.7.7, 2.7.10), when negotiated: NeedsInterrupt() follows the
// driver's used_event instead of VIRTQ_AVAIL_F_NO_INTERRUPT, and whenever Pop() finds the
// ring empty it sets avail_event to the next index it will consume (so the driver notifies
// for the next chain it adds) and looks once more, closing the race with a driver adding one
// meanwhile. A device therefore relies on notifications only after a Pop() returned nullopt.
//
// Not thread-safe: the device that owns a Queue serializes access to it.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::virtio {

// What the driver wrote into the transport's queue registers, unvalidated.
struct QueueConfig {
  uint16_t size = 0;  // QueueNum
  bool ready = false;
  uint64_t desc_addr = 0;   // descriptor table
  uint64_t avail_addr = 0;  // driver area: the available ring
  uint64_t used_addr = 0;   // device area: the used ring
};

// One validated buffer of a chain: a host view of guest memory. The guest may still change
// the bytes (it owns them) but not where they are.
struct DescriptorBuffer {
  std::span<uint8_t> data;
  bool device_writable = false;
};

// A validated descriptor chain: device-readable buffers first, then device-writable ones.
struct DescriptorChain {
  uint16_t head = 0;  // the id returned in the used ring
  std::vector<DescriptorBuffer> buffers;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;

  // Copies up to dst.size() device-readable bytes starting at byte `offset` of the readable
  // part; returns the number copied.
  size_t ReadFrom(uint64_t offset, std::span<uint8_t> dst) const;
  // Copies up to src.size() bytes into the device-writable part starting at its byte
  // `offset`; returns the number copied.
  size_t WriteTo(uint64_t offset, std::span<const uint8_t> src) const;
  // The readable (or writable) parts as spans, starting `offset` bytes in and at most
  // `max_bytes` long (for readv/writev).
  std::vector<std::span<uint8_t>> ReadableSpans(uint64_t offset, uint64_t max_bytes) const;
  std::vector<std::span<uint8_t>> WritableSpans(uint64_t offset, uint64_t max_bytes) const;
};

class Queue {
 public:
  // The largest indirect table we accept (descriptors). Linux never builds one longer than
  // the queue size; this bounds our work per chain whatever the queue size.
  static constexpr uint32_t kMaxIndirectDescriptors = 1024;

  // Validates `config` against `max_size` and guest memory and returns the queue, ready to
  // pop from index 0. `features` are the negotiated ones (for VIRTIO_RING_F_INDIRECT_DESC).
  // `index` only names the queue in error messages.
  static absl::StatusOr<Queue> Create(const GuestMemory& memory, uint32_t index,
                                      const QueueConfig& config, uint16_t max_size,
                                      uint64_t features);

  Queue(Queue&&) = default;
  Queue& operator=(Queue&&) = default;

  uint32_t index() const { return index_; }
  uint16_t size() const { return size_; }

  // The next available chain, validated; nullopt if the driver has made none available.
  // An error means the queue is malformed.
  absl::StatusOr<std::optional<DescriptorChain>> Pop();
  // Gives the last popped chain back (it is popped again next time), for a device that
  // popped a receive buffer and then had nothing to put in it.
  void UndoPop();
  // True if the driver has made a chain available that Pop has not returned.
  absl::StatusOr<bool> HasAvailable() const;

  // Returns the chain `head` to the driver with `len` bytes written into it, and publishes
  // the new used index.
  void AddUsed(uint16_t head, uint32_t len);
  // Whether the driver wants an interrupt for the buffers used since the last call (false if
  // none were, or it set VIRTQ_AVAIL_F_NO_INTERRUPT).
  bool NeedsInterrupt();

 private:
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  static_assert(sizeof(Desc) == 16, "struct virtq_desc");

  Queue(const GuestMemory* memory, uint32_t index, uint16_t size, bool indirect, bool event_idx,
        std::span<uint8_t> desc, std::span<uint8_t> avail, std::span<uint8_t> used)
      : memory_(memory),
        index_(index),
        size_(size),
        indirect_(indirect),
        event_idx_(event_idx),
        desc_(desc),
        avail_(avail),
        used_(used) {}

  uint16_t LoadAvailIdx() const;
  absl::Status AddBuffer(const Desc& d, DescriptorChain& chain, bool& seen_writable) const;
  absl::Status WalkIndirect(const Desc& d, DescriptorChain& chain, bool& seen_writable) const;
  absl::Status Malformed(const std::string& what) const;

  const GuestMemory* memory_;
  uint32_t index_;
  uint16_t size_;
  bool indirect_;
  bool event_idx_;
  std::span<uint8_t> desc_;
  std::span<uint8_t> avail_;
  std::span<uint8_t> used_;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  bool used_since_signal_ = false;
  uint16_t used_at_last_signal_check_ = 0;
};

}  // namespace skiff::gen2::virtio
