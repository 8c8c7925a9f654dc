#pragma once

// Kernel modules for a modular guest kernel (Debian's): the initramfs carries them in
// /modules with /modules/modules.list naming them in load order (dependencies first; see
// scripts/guest-kernel.sh). A kernel with everything built in has no list: nothing to do.

#include <string>
#include <string_view>

#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

// finit_module for every listed module, in order, with its parameters from the kernel
// command line ("virtio_mmio.device=4K@0xd0000000:5" → "device=4K@0xd0000000:5"; the
// kernel applies module.param words only to built-in code, modprobe does it for modules).
// Each module file is unlinked once loaded (it only took initramfs memory). A module that
// is already present (EEXIST) counts as loaded.
StepResult LoadModules(const std::string& list_path);

// The parameters for module `name` in `cmdline`, space-separated ("" if none). Dashes and
// underscores in module names are the same.
std::string ModuleParams(std::string_view cmdline, std::string_view name);

}  // namespace skiff::gen2::init
