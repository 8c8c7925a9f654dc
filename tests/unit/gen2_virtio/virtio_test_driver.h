#pragma once

// The driver's side of virtio, for tests and the fuzzer: fake guest memory over a vector, a
// split virtqueue written the way a guest driver writes it (and corrupted the way a hostile
// one does), and the virtio-mmio initialization sequence of virtio 1.2, 3.1.1. No gtest here
// (the fuzzer includes it).

#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "sandbox/gen2/devices/bus_device.h"
#include "sandbox/gen2/devices/virtio/mmio_transport.h"
#include "sandbox/gen2/devices/virtio/queue.h"
#include "sandbox/gen2/devices/virtio/virtio.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2::virtio::testing {

// Counts Trigger() calls.
class CountingInterrupt final : public Interrupt {
 public:
  void Trigger() override { count_.fetch_add(1); }
  int count() const { return count_.load(); }

 private:
  std::atomic<int> count_{0};
};

// `size` bytes of guest RAM starting at guest-physical `base`.
class FakeGuest {
 public:
  explicit FakeGuest(size_t size, uint64_t base = 0x10000)
      : bytes_(size), memory_(GuestMemory::FromBuffer(base, bytes_)), base_(base) {}
  const GuestMemory& memory() const { return memory_; }
  uint64_t base() const { return base_; }
  uint64_t end() const { return base_ + bytes_.size(); }
  uint8_t* At(uint64_t gpa) { return bytes_.data() + (gpa - base_); }
  std::span<uint8_t> bytes() { return bytes_; }
  template <typename T>
  void Put(uint64_t gpa, const T& v) {
    std::memcpy(At(gpa), &v, sizeof(T));
  }
  template <typename T>
  T Get(uint64_t gpa) {
    T v;
    std::memcpy(&v, At(gpa), sizeof(T));
    return v;
  }

 private:
  std::vector<uint8_t> bytes_;
  GuestMemory memory_;
  uint64_t base_;
};

struct Buf {
  uint64_t gpa;
  uint32_t len;
  bool writable = false;
};

// The driver's view of one split virtqueue in a FakeGuest.
class DriverQueue {
 public:
  DriverQueue(FakeGuest& guest, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
      : guest_(guest), size_(size), desc_(desc), avail_(avail), used_(used) {}

  QueueConfig config() const { return {size_, true, desc_, avail_, used_}; }
  uint16_t size() const { return size_; }

  void SetDesc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    const uint64_t d = desc_ + 16ull * i;
    guest_.Put<uint64_t>(d, addr);
    guest_.Put<uint32_t>(d + 8, len);
    guest_.Put<uint16_t>(d + 12, flags);
    guest_.Put<uint16_t>(d + 14, next);
  }
  // Writes `bufs` as a chain in the next free descriptors (wrapping) and returns its head.
  uint16_t WriteChain(const std::vector<Buf>& bufs) {
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < bufs.size(); ++i) {
      const uint16_t me = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
      const bool last = i + 1 == bufs.size();
      SetDesc(me, bufs[i].gpa, bufs[i].len,
              static_cast<uint16_t>((last ? 0 : kDescFNext) | (bufs[i].writable ? kDescFWrite : 0)),
              last ? 0 : next_desc_);
    }
    return head;
  }
  // Writes an indirect table of `bufs` at `table` and one descriptor pointing at it.
  uint16_t WriteIndirectChain(uint64_t table, const std::vector<Buf>& bufs) {
    for (size_t i = 0; i < bufs.size(); ++i) {
      const uint64_t d = table + 16 * i;
      const bool last = i + 1 == bufs.size();
      guest_.Put<uint64_t>(d, bufs[i].gpa);
      guest_.Put<uint32_t>(d + 8, bufs[i].len);
      guest_.Put<uint16_t>(d + 12, static_cast<uint16_t>((last ? 0 : kDescFNext) |
                                                         (bufs[i].writable ? kDescFWrite : 0)));
      guest_.Put<uint16_t>(d + 14, static_cast<uint16_t>(last ? 0 : i + 1));
    }
    const uint16_t head = next_desc_;
    next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
    SetDesc(head, table, static_cast<uint32_t>(16 * bufs.size()), kDescFIndirect, 0);
    return head;
  }
  // Puts `head` in the available ring and bumps the available index.
  void Publish(uint16_t head) {
    const uint16_t idx = AvailIdx();
    guest_.Put<uint16_t>(avail_ + 4 + 2ull * (idx % size_), head);
    SetAvailIdx(static_cast<uint16_t>(idx + 1));
  }
  uint16_t Add(const std::vector<Buf>& bufs) {
    const uint16_t head = WriteChain(bufs);
    Publish(head);
    return head;
  }
  // Ring indices with the driver's side of the memory ordering (release on publishing the
  // available index, acquire on reading the used one), as a device thread may run meanwhile.
  uint16_t AvailIdx() { return Idx(avail_ + 2).load(std::memory_order_relaxed); }
  void SetAvailIdx(uint16_t idx) { Idx(avail_ + 2).store(idx, std::memory_order_release); }
  void SetAvailFlags(uint16_t flags) { Idx(avail_).store(flags, std::memory_order_relaxed); }
  uint16_t UsedIdx() { return Idx(used_ + 2).load(std::memory_order_acquire); }
  // The used element at ring position `i`: {id, len}.
  std::pair<uint32_t, uint32_t> Used(uint16_t i) {
    const uint64_t e = used_ + 4 + 8ull * (i % size_);
    return {guest_.Get<uint32_t>(e), guest_.Get<uint32_t>(e + 4)};
  }

 private:
  std::atomic_ref<uint16_t> Idx(uint64_t gpa) {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(guest_.At(gpa)));
  }

  FakeGuest& guest_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
  uint16_t next_desc_ = 0;
};

// The driver's side of a virtio-mmio transport.
class MmioDriver {
 public:
  explicit MmioDriver(BusDevice& transport) : t_(transport) {}

  uint32_t Read32(uint64_t offset) {
    uint32_t v = 0;
    t_.Read(offset, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void Write32(uint64_t offset, uint32_t v) {
    t_.Write(offset, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  uint32_t Status() { return Read32(mmio::kRegStatus); }
  void SetStatus(uint32_t v) { Write32(mmio::kRegStatus, v); }
  uint64_t DeviceFeatures() {
    Write32(mmio::kRegDeviceFeaturesSel, 0);
    uint64_t f = Read32(mmio::kRegDeviceFeatures);
    Write32(mmio::kRegDeviceFeaturesSel, 1);
    return f | (uint64_t{Read32(mmio::kRegDeviceFeatures)} << 32);
  }
  void WriteDriverFeatures(uint64_t f) {
    Write32(mmio::kRegDriverFeaturesSel, 0);
    Write32(mmio::kRegDriverFeatures, static_cast<uint32_t>(f));
    Write32(mmio::kRegDriverFeaturesSel, 1);
    Write32(mmio::kRegDriverFeatures, static_cast<uint32_t>(f >> 32));
  }
  void ConfigureQueue(uint32_t index, const QueueConfig& q) {
    Write32(mmio::kRegQueueSel, index);
    Write32(mmio::kRegQueueNum, q.size);
    Write32(mmio::kRegQueueDescLow, static_cast<uint32_t>(q.desc_addr));
    Write32(mmio::kRegQueueDescHigh, static_cast<uint32_t>(q.desc_addr >> 32));
    Write32(mmio::kRegQueueDriverLow, static_cast<uint32_t>(q.avail_addr));
    Write32(mmio::kRegQueueDriverHigh, static_cast<uint32_t>(q.avail_addr >> 32));
    Write32(mmio::kRegQueueDeviceLow, static_cast<uint32_t>(q.used_addr));
    Write32(mmio::kRegQueueDeviceHigh, static_cast<uint32_t>(q.used_addr >> 32));
    Write32(mmio::kRegQueueReady, q.ready ? 1 : 0);
  }
  // virtio 1.2, 3.1.1: reset, ACKNOWLEDGE, DRIVER, features (the device's & `wanted`),
  // FEATURES_OK and its check, the queues, DRIVER_OK.
  absl::Status Init(uint64_t wanted, const std::vector<QueueConfig>& queues) {
    if (Read32(mmio::kRegMagicValue) != mmio::kMagicValue || Read32(mmio::kRegVersion) != 2) {
      return absl::FailedPreconditionError("not a virtio-mmio v2 device");
    }
    SetStatus(0);
    SetStatus(kStatusAcknowledge);
    SetStatus(kStatusAcknowledge | kStatusDriver);
    WriteDriverFeatures(DeviceFeatures() & wanted);
    SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    if ((Status() & kStatusFeaturesOk) == 0) {
      return absl::FailedPreconditionError("device refused FEATURES_OK");
    }
    for (uint32_t i = 0; i < queues.size(); ++i) {
      Write32(mmio::kRegQueueSel, i);
      if (Read32(mmio::kRegQueueReady) != 0) return absl::InternalError("queue already ready");
      if (Read32(mmio::kRegQueueNumMax) < queues[i].size) {
        return absl::FailedPreconditionError(absl::StrCat("queue ", i, " too large"));
      }
      ConfigureQueue(i, queues[i]);
    }
    SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    const uint32_t status = Status();
    if ((status & kStatusDeviceNeedsReset) != 0 || (status & kStatusDriverOk) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("status after DRIVER_OK: ", status));
    }
    return absl::OkStatus();
  }
  void Notify(uint32_t queue) { Write32(mmio::kRegQueueNotify, queue); }
  // Reads and acknowledges the interrupt status.
  uint32_t AckInterrupts() {
    const uint32_t s = Read32(mmio::kRegInterruptStatus);
    Write32(mmio::kRegInterruptAck, s);
    return s;
  }

 private:
  BusDevice& t_;
};

}  // namespace skiff::gen2::virtio::testing
