// The instance's PID 1. A PID-namespace init only receives the signals it has asked
// for, so an app with default dispositions run as PID 1 would ignore the platform's
// SIGTERM. Like tini, this init never execs: it finishes the namespace-wide setup, forks
// the app (PID 2), forwards the stop signals to it, reaps every orphan, and when the app
// exits reports its wait status on exit_fd and exits (the kernel then kills whatever is
// left in the namespace). It allocates nothing.

#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/gen1/child_steps.h"
#include "sandbox/gen1/seccomp_policy.h"

namespace skiff::gen1 {

namespace {

constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

[[noreturn]] void Fail(const ChildContext& ctx, const ChildError& error) {
  ReportChildErrorAndExit(ctx.error_fd, error);
}

#define SKIFF_CHILD_STEP(ctx, expr)                            \
  do {                                                         \
    if (ChildError _e = (expr); !IsChildOk(_e)) Fail(ctx, _e); \
  } while (0)

ChildError WaitRelease(const ChildContext& ctx) {
  char byte;
  while (true) {
    ssize_t n = read(ctx.release_fd, &byte, 1);
    if (n == 1) return ChildOk();
    if (n < 0 && errno == EINTR) continue;
    // EOF: the parent gave up (it kills us anyway).
    return ChildFail(ChildStep::kWaitRelease, n == 0 ? ECANCELED : errno);
  }
}

ChildError Check(ChildStep step, int rc) { return rc == 0 ? ChildOk() : ChildFail(step, errno); }

void WriteExitRecord(int fd, int wait_status) {
  AppExitRecord rec;
  rec.magic = kAppExitMagic;
  rec.wait_status = wait_status;
  while (write(fd, &rec, sizeof(rec)) < 0 && errno == EINTR) {
  }
}

// After the app is forked the init needs only to wait, signal and write. Best effort:
// it works the same without these (it never execs), they only shrink what a process
// that took it over could do. Not dumpable: the app, even as root, cannot read or write
// /proc/1/mem (a copy of the shim's memory) or ptrace it.
void ReduceInitPrivileges(const ChildContext& ctx) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = 1u << CAP_KILL;
  syscall(SYS_capset, &header, data);
  InstallSeccompProgram(*ctx.seccomp);  // also sets no_new_privs
}

bool IsForwarded(int sig) {
  for (int s : kForwardedSignals) {
    if (s == sig) return true;
  }
  return false;
}

[[noreturn]] void Supervise(const ChildContext& ctx, pid_t app, const sigset_t& all) {
  while (true) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;  // EINTR
    if (IsForwarded(sig)) {
      kill(app, sig);
      continue;
    }
    if (sig != SIGCHLD) continue;
    while (true) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == app) {
        WriteExitRecord(ctx.exit_fd, status);
        _exit(0);
      }
    }
  }
}

}  // namespace

void RunInit(const ChildContext& ctx) {
  // Every signal waits in the queue for sigwaitinfo(): blocked signals are delivered to
  // a namespace init even without a handler.
  sigset_t all;
  sigfillset(&all);
  SKIFF_CHILD_STEP(ctx, Check(ChildStep::kSignalMask, sigprocmask(SIG_SETMASK, &all, nullptr)));
  // Dies with the shim instead of lingering.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The filesystem work overlaps with the parent's cgroup and veth steps (moving a task
  // into a v1 cgroup waits for an RCU grace period, ~15 ms here).
  SKIFF_CHILD_STEP(ctx, Check(ChildStep::kSetHostname,
                              sethostname(ctx.hostname, __builtin_strlen(ctx.hostname))));
  SKIFF_CHILD_STEP(ctx, MountRootfs(ctx));
  SKIFF_CHILD_STEP(ctx, MountDev());
  SKIFF_CHILD_STEP(ctx, MountProc());
  SKIFF_CHILD_STEP(ctx, MountSys());
  SKIFF_CHILD_STEP(ctx, WriteEtcFiles(ctx));
  SKIFF_CHILD_STEP(ctx, WaitRelease(ctx));
  // Now in the instance's cgroup, with eth0 moved in: make the cgroup the root of the
  // cgroup namespace, configure the network.
  SKIFF_CHILD_STEP(ctx, Check(ChildStep::kUnshareCgroup, unshare(CLONE_NEWCGROUP)));
  SKIFF_CHILD_STEP(ctx, ConfigureNetwork(ctx));

  pid_t app = static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, 0));
  if (app < 0) Fail(ctx, ChildFail(ChildStep::kForkApp, errno));
  if (app == 0) ExecApp(ctx);

  // The app holds its own copies of the error pipe and stdio until its execve; the init
  // keeps only the exit report pipe, and of its privileges only CAP_KILL (to signal an
  // app running as another user).
  const int keep[] = {ctx.exit_fd};
  CloseFdsExcept(keep, 1);
  ReduceInitPrivileges(ctx);
  Supervise(ctx, app, all);
}

void CloseFdsExcept(const int* keep, int count) {
  // Sorts the (few) kept fds without allocating, then closes the gaps between them.
  int sorted[8];
  int n = 0;
  for (int i = 0; i < count && n < 8; ++i) sorted[n++] = keep[i];
  for (int i = 1; i < n; ++i) {
    for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; --j) {
      int t = sorted[j];
      sorted[j] = sorted[j - 1];
      sorted[j - 1] = t;
    }
  }
  unsigned int next = 0;
  for (int i = 0; i < n; ++i) {
    if (sorted[i] < 0) continue;
    unsigned int fd = static_cast<unsigned int>(sorted[i]);
    if (fd > next) syscall(SYS_close_range, next, fd - 1, 0);
    next = fd + 1;
  }
  syscall(SYS_close_range, next, ~0U, 0);
}

}  // namespace skiff::gen1
