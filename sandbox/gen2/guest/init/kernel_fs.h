#pragma once

// The kernel filesystems of the guest: mounted first thing in the initramfs, moved into
// the new root before switch_root.

#include <string>

#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

// /proc, /sys, /dev (devtmpfs, with /dev/pts and /dev/shm), /run (tmpfs).
StepResult MountKernelFs();

// Moves /dev, /proc, /sys and /run to the same paths under `new_root` (creating the
// mount points in its writable layer if the image lacks them).
StepResult MoveKernelFs(const std::string& new_root);

}  // namespace skiff::gen2::init
