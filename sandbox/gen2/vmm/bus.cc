#include "sandbox/gen2/vmm/bus.h"

#include <cstring>
#include <iterator>

#include "absl/strings/str_format.h"

namespace skiff::gen2 {

absl::Status Bus::Register(uint64_t base, uint64_t len, BusDevice* device) {
  const char* kind = kind_ == Kind::kPio ? "port" : "mmio";
  if (len == 0 || base + len < base || device == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "register %s range [%#x, +%#x): empty, wrapping or no device", kind, base, len));
  }
  // The first range starting at or after base, and the one before it.
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + len) {
    return absl::AlreadyExistsError(
        absl::StrFormat("register %s range [%#x, +%#x): overlaps [%#x, +%#x)", kind, base, len,
                        next->first, next->second.len));
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      return absl::AlreadyExistsError(
          absl::StrFormat("register %s range [%#x, +%#x): overlaps [%#x, +%#x)", kind, base, len,
                          prev->first, prev->second.len));
    }
  }
  ranges_.emplace(base, Range{len, device});
  return absl::OkStatus();
}

BusDevice* Bus::Find(uint64_t addr, uint64_t size, uint64_t* offset) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  const uint64_t off = addr - it->first;
  if (off >= it->second.len || size > it->second.len - off) return nullptr;
  *offset = off;
  return it->second.device;
}

void Bus::Read(uint64_t addr, std::span<uint8_t> data) const {
  uint64_t offset = 0;
  if (BusDevice* device = Find(addr, data.size(), &offset)) {
    device->Read(offset, data);
    return;
  }
  std::memset(data.data(), kind_ == Kind::kPio ? 0xff : 0x00, data.size());
}

void Bus::Write(uint64_t addr, std::span<const uint8_t> data) const {
  uint64_t offset = 0;
  if (BusDevice* device = Find(addr, data.size(), &offset)) device->Write(offset, data);
}

}  // namespace skiff::gen2
