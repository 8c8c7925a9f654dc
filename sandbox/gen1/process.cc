// The app process (PID 2 of the instance), from fork to execve: stdio, rlimits, the
// image's user, reduced capabilities, no_new_privs, seccomp, working dir, execve.

#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/gen1/capabilities.h"
#include "sandbox/gen1/child_steps.h"
#include "sandbox/gen1/seccomp_policy.h"

namespace skiff::gen1 {

namespace {

struct RlimitSetting {
  int resource;
  rlim_t soft;
  rlim_t hard;
};

// Documented in docs/shim.md (capped at the shim's own hard limits). Memory and
// processes are bounded by the cgroup instead.
constexpr RlimitSetting kRlimits[] = {
    {RLIMIT_NOFILE, 65536, 65536},
    {RLIMIT_CORE, 0, 0},
};

[[noreturn]] void Fail(const ChildContext& ctx, ChildStep step, int err, int arg = 0) {
  ReportChildErrorAndExit(ctx.error_fd, ChildFail(step, err, arg));
}

int DupStdio(const ChildContext& ctx) {
  const int from[3] = {ctx.stdin_fd, ctx.stdout_fd, ctx.stderr_fd};
  for (int target = 0; target < 3; ++target) {
    // dup2 clears O_CLOEXEC on the target; the sources stay close-on-exec.
    if (dup2(from[target], target) < 0) return errno;
  }
  return 0;
}

// execve, with a PATH search (like execvpe, without allocating) when argv[0] has no '/'.
int Exec(const ChildContext& ctx) {
  const char* file = ctx.argv[0];
  if (strchr(file, '/') != nullptr) {
    execve(file, ctx.argv, ctx.envp);
    return errno;
  }
  const size_t file_len = strlen(file);
  int result = ENOENT;
  char buf[PATH_MAX];
  const char* p = ctx.search_path;
  while (true) {
    const char* end = strchrnul(p, ':');
    size_t dir_len = static_cast<size_t>(end - p);
    if (dir_len == 0) {
      p = ".";
      dir_len = 1;
    }
    if (dir_len + 1 + file_len + 1 <= sizeof(buf)) {
      memcpy(buf, p, dir_len);
      buf[dir_len] = '/';
      memcpy(buf + dir_len + 1, file, file_len + 1);
      execve(buf, ctx.argv, ctx.envp);
      if (errno == EACCES) {
        result = EACCES;
      } else if (errno != ENOENT && errno != ENOTDIR) {
        return errno;
      }
    }
    if (*end == '\0') break;
    p = end + 1;
  }
  return result;
}

}  // namespace

void ExecApp(const ChildContext& ctx) {
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) Fail(ctx, ChildStep::kSignalMask, errno);
  if (int err = DupStdio(ctx); err != 0) Fail(ctx, ChildStep::kStdio, err);
  int i = 0;
  for (const RlimitSetting& r : kRlimits) {
    // Never above the current hard limit: raising it needs CAP_SYS_RESOURCE.
    struct rlimit cur;
    if (getrlimit(r.resource, &cur) != 0) Fail(ctx, ChildStep::kSetRlimits, errno, i);
    struct rlimit lim = {r.soft < cur.rlim_max ? r.soft : cur.rlim_max,
                         r.hard < cur.rlim_max ? r.hard : cur.rlim_max};
    if (setrlimit(r.resource, &lim) != 0) Fail(ctx, ChildStep::kSetRlimits, errno, i);
    ++i;
  }
  if (int err = DropBoundingSet(*ctx.capabilities); err != 0) {
    Fail(ctx, ChildStep::kDropBoundingSet, err);
  }
  if (setgroups(ctx.group_count, ctx.groups) != 0) Fail(ctx, ChildStep::kSetGroups, errno);
  if (setresgid(ctx.gid, ctx.gid, ctx.gid) != 0) Fail(ctx, ChildStep::kSetGid, errno);
  if (int err = PrepareUidChange(*ctx.capabilities); err != 0) {
    Fail(ctx, ChildStep::kCapabilities, err);
  }
  if (setresuid(ctx.uid, ctx.uid, ctx.uid) != 0) Fail(ctx, ChildStep::kSetUid, errno);
  if (int err = ApplyCapabilities(*ctx.capabilities); err != 0) {
    Fail(ctx, ChildStep::kCapabilities, err);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Fail(ctx, ChildStep::kNoNewPrivs, errno);
  if (int err = InstallSeccompProgram(*ctx.seccomp); err != 0) Fail(ctx, ChildStep::kSeccomp, err);
  if (chdir(ctx.working_dir) != 0) Fail(ctx, ChildStep::kChdir, errno);
  Fail(ctx, ChildStep::kExecve, Exec(ctx));
}

}  // namespace skiff::gen1
