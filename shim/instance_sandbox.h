#pragma once

// What the shim needs of a sandbox, whichever generation runs the instance. gen1: the
// sandbox's PID 1 is its minimal init in the instance's namespaces. gen2: the "init" is the
// VMM process, which runs inside the instance's cgroup and mirrors the guest app's exit.
// The shim reaps init_pid() (its child) and calls OnInitExited() with the wait status.
//
// Threading: one owner, the shim's event loop.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/common/app_exit.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::shim {

class InstanceSandbox {
 public:
  virtual ~InstanceSandbox() = default;

  // Host pid of the process the shim reaps: gen1's init, gen2's VMM.
  virtual pid_t init_pid() const = 0;
  // Delivers `sig` to the app (gen1: through its init; gen2: through the VMM and the
  // control channel to skiff-init in the guest).
  virtual absl::Status Signal(int sig) = 0;
  // Kills everything: the init or the VMM, and every process in the instance's cgroup.
  virtual absl::Status KillAll() = 0;
  // The shim reaped init_pid() with `wait_status`: the app's exit, reported or not.
  virtual AppExit OnInitExited(int wait_status) = 0;
  virtual absl::StatusOr<bool> OomKilled() const = 0;
  // Releases what the sandbox holds (cgroup, veth or tap, mounts). Idempotent.
  virtual absl::Status Destroy() = 0;

  // An fd the shim's loop watches for EPOLLIN and then calls OnEvent(); -1: none (gen1).
  // gen2: the control channel with skiff-init.
  virtual int event_fd() const { return -1; }
  virtual void OnEvent() {}
  // Why the app could not be started after Start() returned (gen2: skiff-init's error
  // report), or "".
  virtual std::string start_error() const { return ""; }
};

// Output of the app that does not come through the stdout/stderr pipes (gen2: log frames
// from the guest). stream 1 = stdout, 2 = stderr.
using OutputSink = std::function<void(int stream, std::string_view data)>;

// Builds the sandbox `config.generation()` names and starts the app, its stdout and stderr
// going to the given pipe write ends (gen1) or to `output` (gen2). On error nothing is left
// behind.
absl::StatusOr<std::unique_ptr<InstanceSandbox>> StartSandbox(const v1::shim::ShimConfig& config,
                                                              int stdout_fd, int stderr_fd,
                                                              OutputSink output);

}  // namespace skiff::shim
