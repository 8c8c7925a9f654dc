#pragma once

// The instance's app: forked by skiff-init with the spec's argv, env (+ PORT), user and
// working dir, in its own session, stdin on /dev/null and stdout/stderr on pipes that
// skiff-init forwards to the host as log frames.

#include <sys/types.h>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

struct AppProcess {
  pid_t pid = -1;
  UniqueFd stdout_read;
  UniqueFd stderr_read;
};

inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The app's environment: spec.env with PORT=<spec.port> replacing any PORT, and PATH set
// to kDefaultPath if the spec has none.
std::vector<std::string> AppEnvironment(const control::InstanceSpec& spec);

// Forks and execs the app. Returns once execve succeeded (the child reports a failed
// step and its errno on a close-on-exec pipe, allocating nothing after the fork).
StepResult StartApp(const control::InstanceSpec& spec, AppProcess* app);

}  // namespace skiff::gen2::init
