#pragma once

// A minimal i8042 keyboard controller at ports 0x60..0x64 (registered as one 5-port range;
// port 0x61 belongs to the in-kernel PIT's speaker emulation and never reaches us). Only
// what a guest needs to end the VM: command 0xFE ("pulse the reset line") written to the
// command port calls `on_reset`, which is how Linux reboots with `reboot=k` and how the
// test guest ends. Status reads 0 (both buffers empty, so a guest waiting to send a command
// proceeds), data reads 0, every other command is accepted and ignored.

#include <cstdint>
#include <functional>
#include <span>

#include "sandbox/gen2/devices/bus_device.h"

namespace skiff::gen2 {

class I8042 : public BusDevice {
 public:
  // Offsets within the registered range (base layout::kI8042DataPort).
  static constexpr uint64_t kDataOffset = 0;
  static constexpr uint64_t kCommandOffset = 4;
  static constexpr uint64_t kPortCount = 5;
  static constexpr uint8_t kResetCommand = 0xfe;

  // `on_reset` is called on the vCPU thread that wrote the command; it must not block.
  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  const std::function<void()> on_reset_;
};

}  // namespace skiff::gen2
