#include "sandbox/gen2/devices/i8042.h"

#include <cstring>

namespace skiff::gen2 {

void I8042::Read(uint64_t offset, std::span<uint8_t> data) {
  // Status: output buffer empty, input buffer empty. Data: nothing to read. Other ports
  // in the range are not ours: all-ones, like an empty ISA bus.
  const uint8_t value = (offset == kDataOffset || offset == kCommandOffset) ? 0x00 : 0xff;
  std::memset(data.data(), value, data.size());
}

void I8042::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kCommandOffset && !data.empty() && data[0] == kResetCommand && on_reset_) {
    on_reset_();
  }
}

}  // namespace skiff::gen2
