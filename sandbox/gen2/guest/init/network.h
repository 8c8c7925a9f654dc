#pragma once

// The guest's network: lo up (the kernel gives it 127.0.0.1/8), and eth0 (the VMM's
// virtio-net) with the spec's address, prefix, MAC and default route — classic
// SIOCSIF*/SIOCADDRT ioctls, a handful of calls.

#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

inline constexpr const char* kGuestInterface = "eth0";

StepResult ConfigureNetwork(const control::NetworkConfig& network);

}  // namespace skiff::gen2::init
