#pragma once

// skiff-init's orchestrator: the guest's boot checklist, one step per line.

#include "sandbox/gen2/guest/init/options.h"

namespace skiff::gen2::init {

// Runs the instance. As PID 1 it never returns (it ends the VM); in test mode it returns
// the process exit code: 0 once the app's exit was reported, 1 after an error report.
int RunInit(const Options& options);

}  // namespace skiff::gen2::init
