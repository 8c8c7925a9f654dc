#pragma once

// The instance's root filesystem inside the guest: the image's block device mounted
// read-only, a tmpfs (sized by the spec, so written bytes count against guest memory as
// in gen1) holding the overlay's upper and work dirs, and the overlay as the new root.
// The lower and tmpfs mounts sit under kStagingDir in the initramfs, which switch_root
// hides: the app sees only the overlay.

#include <string>

#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

inline constexpr const char* kStagingDir = "/skiff";
inline constexpr const char* kNewRoot = "/skiff/root";

// Mounts spec.root_device (spec.root_fstype, read-only), the tmpfs and the overlay on
// kNewRoot. Waits up to a second for the device node (devtmpfs creates it as the block
// driver probes).
StepResult MountRoot(const control::InstanceSpec& spec);

// Writes spec.files under `root`, resolving no symlinks on the way (an image's
// /etc/resolv.conf that links elsewhere is replaced by a regular file).
StepResult WriteFiles(const std::string& root, const std::vector<control::GuestFile>& files);

// Makes `new_root` the root: chdir, mount --move onto /, chroot. The initramfs stays
// underneath, unreachable; its /init is unlinked first (it only took memory).
StepResult SwitchRoot(const std::string& new_root);

}  // namespace skiff::gen2::init
