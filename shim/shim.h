#pragma once

// skiff-shim: the per-instance supervisor. One process, one thread, one epoll loop
// (signalfd for SIGCHLD/SIGTERM, timerfds for the grace period and the startup probe,
// the control socket and its clients, the app's stdout/stderr pipes). It owns the
// instance's lifetime: builds its sandbox (shim/instance_sandbox.h), records output and state in
// the state dir (see client.h), serves GetStatus/Stop/Subscribe, and exits once the instance has
// exited and everything it held is released.

#include <string>

namespace skiff::shim {

// Runs the shim for `state_dir` (which holds config.pb). Returns the process exit
// code: 0 once the instance's exit is recorded (whatever the instance's outcome),
// non-zero if the shim itself could not start (reason in shim.log and status.pb).
int RunShim(const std::string& state_dir);

}  // namespace skiff::shim
