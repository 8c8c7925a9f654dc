#pragma once

// The test guest's serial output (sandbox/gen2/testguest/README.md), parsed into facts, and
// the host-side expectations for its block checks. Shared by the QEMU check of the guest
// itself and by the VMM's kvm tests that boot it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skiff::gen2::testguest {

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = 0;
};

struct GarbageCase {
  std::string name;  // "head-out-of-range", "next-out-of-range", "loop", "outside-ram"
  uint32_t status = 0;
};

struct GuestReport {
  std::vector<std::string> lines;  // every "tg: " line, without the prefix
  std::string entry;               // "linux64", "linux32", "pvh"; empty: no banner
  std::string cmdline;
  std::vector<E820Entry> e820;
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;
  std::optional<uint32_t> bsp_apic_id;
  std::vector<uint32_t> aps_up;  // APIC ids of the "tg: cpu <id> up" lines
  std::optional<uint32_t> root_fnv1a;
  uint32_t root_sectors_read = 0;
  bool root_read_only = false;
  std::optional<bool> scratch_readback_ok;
  uint32_t scratch_sectors_written = 0;
  std::string net_rx_frame;  // bytes of the first received frame (up to 64)
  std::optional<std::string> control_rx;
  std::vector<GarbageCase> garbage_broken;
  bool garbage_device_broken = false;
  bool halted = false;  // "tg: halt" (testguest.end=halt)
  bool done = false;
  std::vector<std::string> errors;  // "tg: error ..." lines, without "tg: error "
};

// Parses everything the guest printed so far (other lines, e.g. a VMM's own, are skipped).
GuestReport ParseGuestOutput(std::string_view serial);

// FNV-1a 32 as the guest's `blk` mode computes it over the root disk's first sectors.
uint32_t Fnv1a32(std::string_view data);
// The bytes the `blk` mode writes at offsets 0..size-1 of the scratch disk.
std::string ScratchPattern(uint64_t size);

}  // namespace skiff::gen2::testguest
