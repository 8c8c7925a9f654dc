#pragma once

// How a VM ended: what Vmm::Run() returns.

#include <string>

#include "absl/status/status.h"

namespace skiff::gen2 {

enum class VmEnd {
  kReset,     // the guest pulsed the reset line (i8042 command 0xFE) or asked KVM to reset
  kPowerOff,  // the guest powered off (KVM_SYSTEM_EVENT_SHUTDOWN)
  kShutdown,  // a triple fault (KVM_EXIT_SHUTDOWN): what a real machine does is reset
  kStopped,   // the host asked (Vmm::Stop)
  kError,     // the VMM failed; `status` says what
};

struct VmExit {
  VmEnd end = VmEnd::kError;
  absl::Status status;  // OK unless end == kError

  // True for the ends the guest chose (reset, power-off, triple fault).
  bool guest_ended() const {
    return end == VmEnd::kReset || end == VmEnd::kPowerOff || end == VmEnd::kShutdown;
  }
};

const char* VmEndName(VmEnd end);

}  // namespace skiff::gen2
