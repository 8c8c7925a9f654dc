#pragma once

// skiff-init's life after the app started: one poll loop over the app's stdout/stderr
// (forwarded as log frames), the control channel (signal requests), and a signalfd
// (SIGCHLD: reap every child, PID 1's duty; signals sent to skiff-init itself are
// forwarded to the app like the host's).

#include "sandbox/gen2/guest/init/app.h"
#include "sandbox/gen2/guest/init/control_channel.h"
#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

struct SuperviseOutcome {
  int wait_status = 0;       // the app's, valid when !host_failed
  bool host_failed = false;  // the host sent a malformed frame or hung up
  control::InitStep step = control::InitStep::kSupervise;  // the failure's step
  StepResult failure;                                      // set when the loop broke
};

// How "everything" is killed (a KILL from the host, or what is left once the app exited):
// in the guest every process but PID 1 (kill(-1)); in test mode the app's session.
enum class KillScope { kAllProcesses, kAppSession };

// Runs until the app exited and its output is drained (or something broke). `signal_fd`
// is a signalfd for SIGCHLD and the forwarded signals, all blocked.
SuperviseOutcome Supervise(ControlChannel& control, AppProcess& app, int signal_fd,
                           KillScope scope);

}  // namespace skiff::gen2::init
