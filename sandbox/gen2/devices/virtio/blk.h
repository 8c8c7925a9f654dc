#pragma once

// virtio-blk (virtio 1.2, 5.2) over a host file or block device: IN, OUT, FLUSH and GET_ID
// on one request queue. Requests run synchronously (pread/pwrite) on the notifying thread.
//
// Every request is checked: a header of 16 readable bytes, a status byte (the last writable
// byte of the chain, written last), a data length that is a multiple of 512, and a sector
// range inside the disk; a bad range or an OUT on a read-only disk is VIRTIO_BLK_S_IOERR, an
// unknown type VIRTIO_BLK_S_UNSUPP. A chain too short to hold a header and a status byte is
// returned unprocessed (used length 0). A malformed queue breaks the device (device.h).
//
// Offered: VERSION_1, RING_INDIRECT_DESC, RING_EVENT_IDX, BLK_F_FLUSH, BLK_F_SEG_MAX, and
// BLK_F_RO on a read-only disk. Config space: capacity in 512-byte sectors (a disk's last partial
// sector is not visible) and seg_max.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/devices/virtio/device.h"
#include "sandbox/gen2/devices/virtio/queue.h"

namespace skiff::gen2::virtio {

class VirtioBlk final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  // Data segments per request (VIRTIO_BLK_F_SEG_MAX): with the header and the status byte a
  // request fits the queue even without indirect descriptors. Without it Linux sends one
  // segment per request.
  static constexpr uint32_t kSegMax = 128;

  // Opens `path` (O_RDONLY or O_RDWR, O_CLOEXEC). `id` is what GET_ID returns (the guest's
  // /sys/block/vdX/serial), at most 20 bytes.
  static absl::StatusOr<std::shared_ptr<VirtioBlk>> Open(const std::string& path, bool read_only,
                                                         const std::string& id);
  // Takes an fd the caller opened (readable; writable too unless read_only).
  static absl::StatusOr<std::shared_ptr<VirtioBlk>> Create(UniqueFd disk, bool read_only,
                                                           const std::string& id);

  const char* name() const override { return "virtio-blk"; }
  uint32_t device_type() const override;
  uint64_t offered_features() const override;
  std::span<const uint16_t> queue_max_sizes() const override { return kQueueMaxSizes; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint64_t, std::span<const uint8_t>) override {}
  absl::Status Activate(uint64_t acked_features, std::vector<Queue> queues,
                        VirtioInterrupt* interrupt) override;
  void Notify(uint32_t queue_index) override;
  void Reset() override;

  uint64_t capacity_sectors() const { return capacity_sectors_; }
  bool read_only() const { return read_only_; }

 private:
  static constexpr uint16_t kQueueMaxSizes[] = {kQueueSize};

  VirtioBlk(UniqueFd disk, bool read_only, const std::string& id, uint64_t capacity_sectors);

  // Runs one request; returns the number of bytes written into the chain (status included).
  uint32_t HandleRequest(const DescriptorChain& chain);
  uint8_t Transfer(bool write, uint64_t sector, const std::vector<std::span<uint8_t>>& spans,
                   uint64_t bytes);

  const UniqueFd disk_;
  const bool read_only_;
  const uint64_t capacity_sectors_;
  uint8_t id_[20] = {};

  absl::Mutex mu_;
  std::optional<Queue> queue_ ABSL_GUARDED_BY(mu_);
  VirtioInterrupt* interrupt_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace skiff::gen2::virtio
