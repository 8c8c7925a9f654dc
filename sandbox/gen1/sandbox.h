#pragma once

// A gen1 sandbox: an instance in its own mount, PID, UTS, IPC, network and cgroup
// namespaces, in its own cgroup, with an overlay root on a memory-charged tmpfs, reduced
// capabilities and a seccomp policy. Its PID 1 is a minimal init (init.cc) that runs the
// app as PID 2.
//
// Threading: not thread-safe; one owner (the shim's event loop). The owner reaps the
// init (it is the owner's child): call OnInitExited() with its wait status, then
// Destroy().

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/common/app_exit.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen1/spec.h"

namespace skiff::gen1 {

using ::skiff::AppExit;

class Gen1Sandbox {
 public:
  // Builds the sandbox and starts the app. Returns once the app's execve() succeeded,
  // or an error naming the failing step and its argument; on error nothing is left
  // behind (no process, cgroup, veth, mount or directory).
  static absl::StatusOr<std::unique_ptr<Gen1Sandbox>> Start(const SandboxSpec& spec);

  ~Gen1Sandbox();  // SIGKILLs and reaps the init if still running, then Destroy()s.
  Gen1Sandbox(const Gen1Sandbox&) = delete;
  Gen1Sandbox& operator=(const Gen1Sandbox&) = delete;

  // Host pid of the instance's init (PID 1).
  pid_t init_pid() const { return init_pid_; }
  // Readable once the init reported the app's exit (or died): for the owner's epoll.
  int exit_report_fd() const { return exit_report_.get(); }

  // Sends `sig` to the init (which forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2
  // to the app). Uses the pidfd: never hits a recycled pid.
  absl::Status Signal(int sig);
  // SIGKILLs the init (so the kernel kills the whole PID namespace) and every process
  // in the cgroup.
  absl::Status KillAll();
  // The owner reaped the init with `init_wait_status`: combines it with the init's
  // report (if any) into the app's exit.
  AppExit OnInitExited(int init_wait_status);
  // Blocking convenience for callers without an event loop: waits for the init, reaps
  // it, and returns OnInitExited()'s result.
  absl::StatusOr<AppExit> Wait();
  // True once the kernel OOM-killed something in the instance's cgroup.
  absl::StatusOr<bool> OomKilled() const;
  // The instance's cgroup (for CPU quota handles, usage, procs).
  Cgroup& cgroup() { return *cgroup_; }

  // After the init has been reaped: kills stragglers, removes the cgroup, the host veth
  // (if still there) and the rootfs mount point. Idempotent.
  absl::Status Destroy();

 private:
  Gen1Sandbox() = default;
  absl::Status ConfigureFromHost(const SandboxSpec& spec, int release_fd);

  pid_t init_pid_ = -1;
  bool reaped_ = false;
  bool destroyed_ = false;
  UniqueFd pidfd_;
  UniqueFd exit_report_;
  std::unique_ptr<Cgroup> cgroup_;
  std::string host_veth_;
  std::string layer_dir_;
};

}  // namespace skiff::gen1
