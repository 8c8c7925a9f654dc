#include "sandbox/gen2/vmm/guest_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2 {

absl::StatusOr<GuestMemory> GuestMemory::Create(uint64_t size) {
  if (size < layout::kMinMemory || size % layout::kPageSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat("guest memory size ", size,
                                                   ": must be a multiple of 4096 and at least ",
                                                   layout::kMinMemory));
  }
  GuestMemory mem;
  mem.owned_ = true;
  const uint64_t low = std::min(size, layout::kMmioGapStart);
  const std::pair<uint64_t, uint64_t> parts[] = {{0, low}, {layout::kMmioGapEnd, size - low}};
  for (const auto& [gpa, bytes] : parts) {
    if (bytes == 0) continue;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      return ErrnoStatus(errno, "mmap(guest memory, ", bytes, " bytes at gpa ",
                         absl::StrFormat("%#x", gpa), ")");
    }
    // Guest memory never goes into a core dump of the VMM.
    madvise(p, bytes, MADV_DONTDUMP);
    mem.regions_.push_back({gpa, bytes, static_cast<uint8_t*>(p)});
  }
  return mem;
}

GuestMemory GuestMemory::FromBuffer(uint64_t gpa, std::span<uint8_t> buffer) {
  GuestMemory mem;
  mem.regions_.push_back({gpa, buffer.size(), buffer.data()});
  return mem;
}

GuestMemory::~GuestMemory() { Unmap(); }

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : regions_(std::exchange(other.regions_, {})), owned_(std::exchange(other.owned_, false)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    Unmap();
    regions_ = std::exchange(other.regions_, {});
    owned_ = std::exchange(other.owned_, false);
  }
  return *this;
}

void GuestMemory::Unmap() {
  if (owned_) {
    for (const MemoryRegion& r : regions_) munmap(r.host, r.size);
  }
  regions_.clear();
  owned_ = false;
}

uint64_t GuestMemory::size() const {
  uint64_t total = 0;
  for (const MemoryRegion& r : regions_) total += r.size;
  return total;
}

absl::StatusOr<std::span<uint8_t>> GuestMemory::Slice(uint64_t gpa, uint64_t len) const {
  for (const MemoryRegion& r : regions_) {
    if (gpa < r.gpa) continue;
    const uint64_t offset = gpa - r.gpa;
    if (offset > r.size || len > r.size - offset) continue;
    return std::span<uint8_t>(r.host + offset, static_cast<size_t>(len));
  }
  return absl::OutOfRangeError(
      absl::StrFormat("guest range [%#x, +%#x) is not inside guest memory", gpa, len));
}

absl::Status GuestMemory::Read(uint64_t gpa, void* dst, size_t len) const {
  absl::StatusOr<std::span<uint8_t>> s = Slice(gpa, len);
  if (!s.ok()) return s.status();
  if (len != 0) std::memcpy(dst, s->data(), len);
  return absl::OkStatus();
}

absl::Status GuestMemory::Write(uint64_t gpa, const void* src, size_t len) const {
  absl::StatusOr<std::span<uint8_t>> s = Slice(gpa, len);
  if (!s.ok()) return s.status();
  if (len != 0) std::memcpy(s->data(), src, len);
  return absl::OkStatus();
}

}  // namespace skiff::gen2
