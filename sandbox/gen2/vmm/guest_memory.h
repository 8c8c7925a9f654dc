#pragma once

// The guest's RAM as seen from the VMM: one or two host mappings (below the MMIO gap and,
// for guests larger than the gap allows, from 4 GiB up). Every access by guest-physical
// address is bounds-checked: a range that is not entirely inside one region is an error
// naming the address and length, never a host access. The guest runs concurrently with
// the VMM, so its memory can change between two reads; callers that validate a value
// must copy it first and use the copy (virtqueues read ring indices with acquire loads).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skiff::gen2 {

struct MemoryRegion {
  uint64_t gpa = 0;   // guest-physical start
  uint64_t size = 0;  // bytes
  uint8_t* host = nullptr;
};

class GuestMemory {
 public:
  // Maps `size` bytes of private anonymous memory (MAP_NORESERVE; pages are charged to the
  // memory cgroup of the thread that first touches them) laid out by vmm/layout.h: up to
  // kMmioGapStart below the gap, the rest from 4 GiB. `size` must be a multiple of the page
  // size and at least layout::kMinMemory.
  static absl::StatusOr<GuestMemory> Create(uint64_t size);

  // Wraps memory the caller owns and keeps alive (tests and fuzzers use a vector), as one
  // region starting at `gpa`. Nothing is unmapped on destruction.
  static GuestMemory FromBuffer(uint64_t gpa, std::span<uint8_t> buffer);

  GuestMemory() = default;
  ~GuestMemory();
  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t size() const;  // total bytes of RAM

  // Host view of [gpa, gpa + len): OUT_OF_RANGE unless it lies entirely inside one region
  // (overflow of gpa + len included). len 0 is valid anywhere a region starts or ends.
  absl::StatusOr<std::span<uint8_t>> Slice(uint64_t gpa, uint64_t len) const;

  absl::Status Read(uint64_t gpa, void* dst, size_t len) const;
  absl::Status Write(uint64_t gpa, const void* src, size_t len) const;

  template <typename T>
  absl::StatusOr<T> ReadObj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    absl::Status s = Read(gpa, &value, sizeof(T));
    if (!s.ok()) return s;
    return value;
  }
  template <typename T>
  absl::Status WriteObj(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return Write(gpa, &value, sizeof(T));
  }

 private:
  void Unmap();

  std::vector<MemoryRegion> regions_;
  bool owned_ = false;  // regions_ are our mmap()s
};

}  // namespace skiff::gen2
