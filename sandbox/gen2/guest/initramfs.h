#pragma once

// The gen2 guest's initramfs: /init = skiff-init, /dev/console (the kernel opens it for
// init's stdio before /dev is mounted), the directories skiff-init mounts on, and for a
// modular kernel (Debian's) /modules/*.ko with /modules/modules.list naming them in load
// order (what scripts/guest-kernel.sh prints as modules_dir and modules_list).

#include <string>

#include "absl/status/status.h"

namespace skiff::gen2::guest {

struct InitramfsSpec {
  std::string init_path;     // the skiff-init binary
  std::string modules_dir;   // "" for a kernel with everything built in
  std::string modules_list;  // file names in modules_dir, one per line, in load order
};

// Writes the newc cpio archive to `output` (a temp name in the same directory, renamed
// into place when complete). A listed module that is missing or not a plain "name.ko" is
// an error.
absl::Status BuildInitramfs(const InitramfsSpec& spec, const std::string& output);

}  // namespace skiff::gen2::guest
