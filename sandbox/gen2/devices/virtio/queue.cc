#include "sandbox/gen2/devices/virtio/queue.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/devices/virtio/virtio.h"

namespace skiff::gen2::virtio {
namespace {

// Offsets inside the rings (2.7.6 and 2.7.8).
constexpr size_t kRingFlags = 0;
constexpr size_t kRingIdx = 2;
constexpr size_t kRingEntries = 4;

uint16_t* U16At(std::span<uint8_t> s, size_t offset) {
  return reinterpret_cast<uint16_t*>(s.data() + offset);
}

bool HostAligned(std::span<uint8_t> s, uint64_t align) {
  return reinterpret_cast<uintptr_t>(s.data()) % align == 0;
}

// Views into `buffers` of the given kind starting `offset` bytes in, at most `max_bytes`.
std::vector<std::span<uint8_t>> Spans(const std::vector<DescriptorBuffer>& buffers, bool writable,
                                      uint64_t offset, uint64_t max_bytes) {
  std::vector<std::span<uint8_t>> out;
  for (const DescriptorBuffer& b : buffers) {
    if (b.device_writable != writable || max_bytes == 0) continue;
    if (offset >= b.data.size()) {
      offset -= b.data.size();
      continue;
    }
    const uint64_t n = std::min<uint64_t>(b.data.size() - offset, max_bytes);
    if (n > 0) out.push_back(b.data.subspan(offset, n));
    max_bytes -= n;
    offset = 0;
  }
  return out;
}

}  // namespace

size_t DescriptorChain::ReadFrom(uint64_t offset, std::span<uint8_t> dst) const {
  size_t done = 0;
  for (std::span<uint8_t> s : Spans(buffers, false, offset, dst.size())) {
    std::memcpy(dst.data() + done, s.data(), s.size());
    done += s.size();
  }
  return done;
}

size_t DescriptorChain::WriteTo(uint64_t offset, std::span<const uint8_t> src) const {
  size_t done = 0;
  for (std::span<uint8_t> s : Spans(buffers, true, offset, src.size())) {
    std::memcpy(s.data(), src.data() + done, s.size());
    done += s.size();
  }
  return done;
}

std::vector<std::span<uint8_t>> DescriptorChain::ReadableSpans(uint64_t offset,
                                                               uint64_t max_bytes) const {
  return Spans(buffers, false, offset, max_bytes);
}

std::vector<std::span<uint8_t>> DescriptorChain::WritableSpans(uint64_t offset,
                                                               uint64_t max_bytes) const {
  return Spans(buffers, true, offset, max_bytes);
}

absl::StatusOr<Queue> Queue::Create(const GuestMemory& memory, uint32_t index,
                                    const QueueConfig& config, uint16_t max_size,
                                    uint64_t features) {
  auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("virtqueue ", index, ": ", what));
  };
  if (!config.ready) return invalid("not ready");
  const uint16_t n = config.size;
  if (n == 0 || (n & (n - 1)) != 0 || n > max_size) {
    return invalid(absl::StrCat("size ", n, " is not a power of two in [1, ", max_size, "]"));
  }
  struct Part {
    const char* name;
    uint64_t gpa;
    uint64_t bytes;
    uint64_t align;
    std::span<uint8_t> host;
  } parts[] = {
      {"descriptor table", config.desc_addr, DescTableBytes(n), kDescAlign, {}},
      {"available ring", config.avail_addr, AvailRingBytes(n), kAvailAlign, {}},
      {"used ring", config.used_addr, UsedRingBytes(n), kUsedAlign, {}},
  };
  for (Part& p : parts) {
    if (p.gpa % p.align != 0) {
      return invalid(absl::StrFormat("%s at %#x is not %d-byte aligned", p.name, p.gpa, p.align));
    }
    absl::StatusOr<std::span<uint8_t>> s = memory.Slice(p.gpa, p.bytes);
    if (!s.ok()) return invalid(absl::StrCat(p.name, ": ", s.status().message()));
    // Guest memory is page-aligned on the host (tests: a vector's heap block), so an aligned
    // guest address is an aligned host address; checked because the atomics rely on it.
    if (!HostAligned(*s, p.align)) {
      return invalid(absl::StrCat(p.name, ": host mapping is not aligned"));
    }
    p.host = *s;
  }
  const bool indirect = (features & FeatureBit(kFRingIndirectDesc)) != 0;
  const bool event_idx = (features & FeatureBit(kFRingEventIdx)) != 0;
  return Queue(&memory, index, n, indirect, event_idx, parts[0].host, parts[1].host, parts[2].host);
}

absl::Status Queue::Malformed(const std::string& what) const {
  return absl::InvalidArgumentError(absl::StrCat("virtqueue ", index_, " malformed: ", what));
}

uint16_t Queue::LoadAvailIdx() const {
  return std::atomic_ref<uint16_t>(*U16At(avail_, kRingIdx)).load(std::memory_order_acquire);
}

absl::StatusOr<bool> Queue::HasAvailable() const {
  const uint16_t avail_idx = LoadAvailIdx();
  const uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending > size_) {
    return Malformed(absl::StrCat("available index ", avail_idx, " is ", pending,
                                  " ahead of the last seen ", next_avail_, " (queue size ", size_,
                                  ")"));
  }
  return pending != 0;
}

absl::Status Queue::AddBuffer(const Desc& d, DescriptorChain& chain, bool& seen_writable) const {
  absl::StatusOr<std::span<uint8_t>> s = memory_->Slice(d.addr, d.len);
  if (!s.ok()) {
    return Malformed(absl::StrFormat("chain %d: buffer [%#x, +%#x) is not inside guest memory",
                                     chain.head, d.addr, d.len));
  }
  const bool writable = (d.flags & kDescFWrite) != 0;
  if (!writable && seen_writable) {
    return Malformed(
        absl::StrCat("chain ", chain.head, ": a device-readable buffer after a writable one"));
  }
  seen_writable |= writable;
  chain.buffers.push_back({*s, writable});
  (writable ? chain.writable_bytes : chain.readable_bytes) += d.len;
  return absl::OkStatus();
}

absl::Status Queue::WalkIndirect(const Desc& d, DescriptorChain& chain, bool& seen_writable) const {
  if (!indirect_) {
    return Malformed(absl::StrCat("chain ", chain.head,
                                  ": indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC"));
  }
  if ((d.flags & kDescFNext) != 0) {
    return Malformed(absl::StrCat("chain ", chain.head, ": indirect descriptor with NEXT"));
  }
  if (d.len == 0 || d.len % kDescSize != 0 || d.len / kDescSize > kMaxIndirectDescriptors) {
    return Malformed(absl::StrCat("chain ", chain.head, ": indirect table length ", d.len,
                                  " is not a multiple of 16 in [16, ",
                                  kMaxIndirectDescriptors * kDescSize, "]"));
  }
  absl::StatusOr<std::span<uint8_t>> table = memory_->Slice(d.addr, d.len);
  if (!table.ok()) {
    return Malformed(
        absl::StrFormat("chain %d: indirect table [%#x, +%#x) is not inside guest memory",
                        chain.head, d.addr, d.len));
  }
  const uint32_t count = d.len / kDescSize;
  uint32_t i = 0;
  for (uint32_t hops = 1;; ++hops) {
    if (hops > count) {
      return Malformed(absl::StrCat(
          "chain ", chain.head, ": indirect chain longer than its table (", count, "), a loop"));
    }
    Desc e;
    std::memcpy(&e, table->data() + i * kDescSize, sizeof(e));  // copied once, then checked
    if ((e.flags & kDescFIndirect) != 0) {
      return Malformed(absl::StrCat("chain ", chain.head, ": nested indirect descriptor"));
    }
    SKIFF_RETURN_IF_ERROR(AddBuffer(e, chain, seen_writable));
    if ((e.flags & kDescFNext) == 0) return absl::OkStatus();
    if (e.next >= count) {
      return Malformed(absl::StrCat("chain ", chain.head, ": indirect next ", e.next,
                                    " >= table length ", count));
    }
    i = e.next;
  }
}

absl::StatusOr<std::optional<DescriptorChain>> Queue::Pop() {
  SKIFF_ASSIGN_OR_RETURN(bool available, HasAvailable());
  if (!available && event_idx_) {
    // avail_event: "notify me when you make index next_avail_ available", then look again
    // in case the driver added a chain before it could see the new avail_event.
    std::atomic_ref<uint16_t>(*U16At(used_, kRingEntries + kUsedElemSize * size_))
        .store(next_avail_, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    SKIFF_ASSIGN_OR_RETURN(available, HasAvailable());
  }
  if (!available) return std::nullopt;
  // Ordered after the acquire load of the index in HasAvailable().
  const uint16_t head =
      std::atomic_ref<uint16_t>(*U16At(avail_, kRingEntries + 2 * (next_avail_ % size_)))
          .load(std::memory_order_relaxed);
  if (head >= size_) {
    return Malformed(absl::StrCat("available ring entry ", next_avail_ % size_, ": head ", head,
                                  " >= queue size ", size_));
  }
  DescriptorChain chain;
  chain.head = head;
  bool seen_writable = false;
  uint16_t i = head;
  for (uint32_t hops = 1;; ++hops) {
    if (hops > size_) {
      return Malformed(
          absl::StrCat("chain ", head, ": longer than the queue size ", size_, " (a loop)"));
    }
    Desc d;
    std::memcpy(&d, desc_.data() + i * kDescSize, sizeof(d));  // copied once, then checked
    if ((d.flags & kDescFIndirect) != 0) {
      SKIFF_RETURN_IF_ERROR(WalkIndirect(d, chain, seen_writable));
      break;
    }
    SKIFF_RETURN_IF_ERROR(AddBuffer(d, chain, seen_writable));
    if ((d.flags & kDescFNext) == 0) break;
    if (d.next >= size_) {
      return Malformed(absl::StrCat("chain ", head, ": descriptor ", i, " next ", d.next,
                                    " >= queue size ", size_));
    }
    i = d.next;
  }
  ++next_avail_;
  return chain;
}

void Queue::UndoPop() { --next_avail_; }

void Queue::AddUsed(uint16_t head, uint32_t len) {
  const size_t slot = kRingEntries + kUsedElemSize * (next_used_ % size_);
  const uint32_t elem[2] = {head, len};  // struct virtq_used_elem: id, len (little-endian host)
  std::memcpy(used_.data() + slot, elem, sizeof(elem));
  ++next_used_;
  // Release: the element (and the data the device wrote) is visible before the index.
  std::atomic_ref<uint16_t>(*U16At(used_, kRingIdx)).store(next_used_, std::memory_order_release);
  used_since_signal_ = true;
}

bool Queue::NeedsInterrupt() {
  if (!used_since_signal_) return false;
  used_since_signal_ = false;
  // The used index store must be visible before we read the driver's flags (the driver does
  // the mirror image: writes flags, fences, reads the used index).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_used = std::exchange(used_at_last_signal_check_, next_used_);
  if (event_idx_) {
    // vring_need_event(): interrupt if used_event lies in [old_used, next_used_).
    const uint16_t used_event = std::atomic_ref<uint16_t>(*U16At(avail_, kRingEntries + 2 * size_))
                                    .load(std::memory_order_relaxed);
    return static_cast<uint16_t>(next_used_ - used_event - 1) <
           static_cast<uint16_t>(next_used_ - old_used);
  }
  const uint16_t flags =
      std::atomic_ref<uint16_t>(*U16At(avail_, kRingFlags)).load(std::memory_order_relaxed);
  return (flags & kAvailFNoInterrupt) == 0;
}

}  // namespace skiff::gen2::virtio
