#include "sandbox/gen2/devices/virtio/blk.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/devices/virtio/virtio.h"

namespace skiff::gen2::virtio {

absl::StatusOr<std::shared_ptr<VirtioBlk>> VirtioBlk::Open(const std::string& path, bool read_only,
                                                           const std::string& id) {
  UniqueFd fd(open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(virtio-blk disk, ", path, ")");
  return Create(std::move(fd), read_only, id);
}

absl::StatusOr<std::shared_ptr<VirtioBlk>> VirtioBlk::Create(UniqueFd disk, bool read_only,
                                                             const std::string& id) {
  if (id.size() > blk::kIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-blk id \"", id, "\": longer than ", blk::kIdBytes, " bytes"));
  }
  struct stat st;
  if (fstat(disk.get(), &st) != 0) return ErrnoStatus(errno, "fstat(virtio-blk disk)");
  uint64_t bytes = 0;
  if (S_ISREG(st.st_mode)) {
    bytes = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (ioctl(disk.get(), BLKGETSIZE64, &bytes) != 0) {
      return ErrnoStatus(errno, "ioctl(virtio-blk disk, BLKGETSIZE64)");
    }
  } else {
    return absl::InvalidArgumentError("virtio-blk disk: not a regular file or block device");
  }
  return std::shared_ptr<VirtioBlk>(
      new VirtioBlk(std::move(disk), read_only, id, bytes / blk::kSectorSize));
}

VirtioBlk::VirtioBlk(UniqueFd disk, bool read_only, const std::string& id,
                     uint64_t capacity_sectors)
    : disk_(std::move(disk)), read_only_(read_only), capacity_sectors_(capacity_sectors) {
  std::memcpy(id_, id.data(), id.size());
}

uint32_t VirtioBlk::device_type() const { return kDeviceIdBlock; }

uint64_t VirtioBlk::offered_features() const {
  uint64_t f = FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc) | FeatureBit(blk::kFFlush) |
               FeatureBit(blk::kFSegMax) | FeatureBit(kFRingEventIdx);
  if (read_only_) f |= FeatureBit(blk::kFRo);
  return f;
}

void VirtioBlk::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  // struct virtio_blk_config: capacity (le64), size_max (le32, not offered), seg_max (le32);
  // the rest belongs to features we do not offer.
  uint8_t config[16] = {};
  std::memcpy(config, &capacity_sectors_, 8);
  std::memcpy(config + 12, &kSegMax, 4);
  ReadConfigBytes(config, offset, data);
}

absl::Status VirtioBlk::Activate(uint64_t, std::vector<Queue> queues, VirtioInterrupt* interrupt) {
  if (queues.size() != 1) return absl::InvalidArgumentError("virtio-blk: needs one queue");
  absl::MutexLock lock(&mu_);
  queue_.emplace(std::move(queues[0]));
  interrupt_ = interrupt;
  broken_ = false;
  return absl::OkStatus();
}

void VirtioBlk::Reset() {
  absl::MutexLock lock(&mu_);
  queue_.reset();
  interrupt_ = nullptr;
  broken_ = false;
}

void VirtioBlk::Notify(uint32_t queue_index) {
  absl::MutexLock lock(&mu_);
  if (queue_index != 0 || !queue_.has_value() || broken_) return;
  for (;;) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue_->Pop();
    if (!chain.ok()) {
      broken_ = true;
      interrupt_->MarkBroken(chain.status());
      return;
    }
    if (!chain->has_value()) break;
    const uint32_t written = HandleRequest(**chain);
    queue_->AddUsed((*chain)->head, written);
  }
  if (queue_->NeedsInterrupt()) interrupt_->SignalUsedBuffers();
}

uint8_t VirtioBlk::Transfer(bool write, uint64_t sector,
                            const std::vector<std::span<uint8_t>>& spans, uint64_t bytes) {
  if (bytes % blk::kSectorSize != 0 || sector > capacity_sectors_ ||
      bytes / blk::kSectorSize > capacity_sectors_ - sector) {
    return blk::kSIoErr;
  }
  off_t offset = static_cast<off_t>(sector * blk::kSectorSize);
  std::vector<iovec> iov;
  iov.reserve(spans.size());
  for (std::span<uint8_t> s : spans) iov.push_back({s.data(), s.size()});
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = write ? pwritev(disk_.get(), &iov[first], count, offset)
                            : preadv(disk_.get(), &iov[first], count, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return blk::kSIoErr;  // error, or the file shrank under us
    offset += n;
    for (size_t left = static_cast<size_t>(n); left > 0;) {
      const size_t step = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + step;
      iov[first].iov_len -= step;
      left -= step;
      if (iov[first].iov_len == 0) ++first;
    }
    while (first < iov.size() && iov[first].iov_len == 0) ++first;
  }
  return blk::kSOk;
}

uint32_t VirtioBlk::HandleRequest(const DescriptorChain& chain) {
  if (chain.readable_bytes < blk::kRequestHeaderSize || chain.writable_bytes < 1) return 0;
  uint8_t header[blk::kRequestHeaderSize];
  chain.ReadFrom(0, header);
  uint32_t type;
  uint64_t sector;
  std::memcpy(&type, header, sizeof(type));
  std::memcpy(&sector, header + 8, sizeof(sector));
  const uint64_t status_offset = chain.writable_bytes - 1;
  uint64_t written = 0;  // data bytes written into the chain
  uint8_t status = blk::kSOk;
  switch (type) {
    case blk::kTIn:
      status = Transfer(false, sector, chain.WritableSpans(0, status_offset), status_offset);
      if (status == blk::kSOk) written = status_offset;
      break;
    case blk::kTOut: {
      const uint64_t len = chain.readable_bytes - blk::kRequestHeaderSize;
      status = read_only_
                   ? blk::kSIoErr
                   : Transfer(true, sector, chain.ReadableSpans(blk::kRequestHeaderSize, len), len);
      break;
    }
    case blk::kTFlush:
      if (!read_only_ && fdatasync(disk_.get()) != 0) status = blk::kSIoErr;
      break;
    case blk::kTGetId:
      written = chain.WriteTo(
          0, std::span<const uint8_t>(id_).first(std::min<uint64_t>(sizeof(id_), status_offset)));
      break;
    default:
      status = blk::kSUnsupp;
      break;
  }
  chain.WriteTo(status_offset, std::span<const uint8_t>(&status, 1));
  return static_cast<uint32_t>(std::min<uint64_t>(written + 1, UINT32_MAX));
}

}  // namespace skiff::gen2::virtio
