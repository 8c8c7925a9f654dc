#include "sandbox/gen2/guest/init/app.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace skiff::gen2::init {

namespace {

// What the child failed at, written to the error pipe before _exit.
// The app's resource limits, as gen1 sets them (docs/shim.md): many fds, no core dumps.
struct RlimitSetting {
  int resource;
  rlim_t value;
};
constexpr RlimitSetting kRlimits[] = {{RLIMIT_NOFILE, 65536}, {RLIMIT_CORE, 0}};

enum class ChildStage : int32_t {
  kRlimits,
  kSignals = 1,
  kSession,
  kStdio,
  kGroups,
  kGid,
  kUid,
  kChdir,
  kExec
};

struct ChildFailure {
  ChildStage stage;
  int32_t err;
};

// Everything the child needs, prepared before the fork: it only reads this.
struct ExecPlan {
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* search_path = kDefaultPath;
  const char* working_dir = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  bool change_ids = false;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int error_fd = -1;
};

[[noreturn]] void ChildFail(const ExecPlan& plan, ChildStage stage, int err) {
  ChildFailure f = {stage, err};
  while (write(plan.error_fd, &f, sizeof(f)) < 0 && errno == EINTR) {
  }
  _exit(127);
}

// execve with a PATH search when argv[0] has no '/' (like execvpe, without allocating).
int Exec(const ExecPlan& plan) {
  const char* file = plan.argv[0];
  if (strchr(file, '/') != nullptr) {
    execve(file, plan.argv.data(), plan.envp.data());
    return errno;
  }
  const size_t file_len = strlen(file);
  int result = ENOENT;
  char buf[PATH_MAX];
  const char* p = plan.search_path;
  while (true) {
    const char* end = strchrnul(p, ':');
    size_t dir_len = static_cast<size_t>(end - p);
    const char* dir = dir_len == 0 ? "." : p;
    if (dir_len == 0) dir_len = 1;
    if (dir_len + 1 + file_len + 1 <= sizeof(buf)) {
      memcpy(buf, dir, dir_len);
      buf[dir_len] = '/';
      memcpy(buf + dir_len + 1, file, file_len + 1);
      execve(buf, plan.argv.data(), plan.envp.data());
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

[[noreturn]] void RunChild(const ExecPlan& plan) {
  // skiff-init blocks every signal; the app starts with none blocked and default actions.
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) ChildFail(plan, ChildStage::kSignals, errno);
  if (setsid() < 0) ChildFail(plan, ChildStage::kSession, errno);
  const int from[3] = {plan.stdin_fd, plan.stdout_fd, plan.stderr_fd};
  for (int target = 0; target < 3; ++target) {
    if (dup2(from[target], target) < 0) ChildFail(plan, ChildStage::kStdio, errno);
  }
  for (const RlimitSetting& r : kRlimits) {
    struct rlimit lim = {r.value, r.value};
    if (setrlimit(r.resource, &lim) == 0) continue;
    // Raising the hard limit needs CAP_SYS_RESOURCE (the guest's root has it): without,
    // as much as the hard limit allows.
    struct rlimit cur;
    if (getrlimit(r.resource, &cur) != 0) ChildFail(plan, ChildStage::kRlimits, errno);
    lim.rlim_cur = lim.rlim_max = r.value < cur.rlim_max ? r.value : cur.rlim_max;
    if (setrlimit(r.resource, &lim) != 0) ChildFail(plan, ChildStage::kRlimits, errno);
  }
  if (plan.change_ids) {
    if (setgroups(0, nullptr) != 0) ChildFail(plan, ChildStage::kGroups, errno);
    if (setresgid(plan.gid, plan.gid, plan.gid) != 0) ChildFail(plan, ChildStage::kGid, errno);
    if (setresuid(plan.uid, plan.uid, plan.uid) != 0) ChildFail(plan, ChildStage::kUid, errno);
  }
  if (chdir(plan.working_dir) != 0) ChildFail(plan, ChildStage::kChdir, errno);
  ChildFail(plan, ChildStage::kExec, Exec(plan));
}

std::string DescribeFailure(const ChildFailure& f, const control::InstanceSpec& spec) {
  switch (f.stage) {
    case ChildStage::kRlimits:
      return "app: setrlimit";
    case ChildStage::kSignals:
      return "app: sigprocmask";
    case ChildStage::kSession:
      return "app: setsid";
    case ChildStage::kStdio:
      return "app: dup2(stdio)";
    case ChildStage::kGroups:
      return "app: setgroups";
    case ChildStage::kGid:
      return "app: setresgid(" + std::to_string(spec.gid) + ")";
    case ChildStage::kUid:
      return "app: setresuid(" + std::to_string(spec.uid) + ")";
    case ChildStage::kChdir:
      return "app: chdir(" + spec.working_dir + ")";
    case ChildStage::kExec:
      return "app: execve(" + spec.argv[0] + ")";
  }
  return "app: unknown step";
}

StepResult MakePipe(UniqueFd* read_end, UniqueFd* write_end, const char* what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return StepFail(errno, std::string("pipe2(") + what + ")");
  *read_end = UniqueFd(fds[0]);
  *write_end = UniqueFd(fds[1]);
  return StepOk();
}

}  // namespace

std::vector<std::string> AppEnvironment(const control::InstanceSpec& spec) {
  std::vector<std::string> env;
  bool has_path = false;
  for (const std::string& kv : spec.env) {
    if (kv.compare(0, 5, "PORT=") == 0) continue;
    if (kv.compare(0, 5, "PATH=") == 0) has_path = true;
    env.push_back(kv);
  }
  env.push_back("PORT=" + std::to_string(spec.port));
  if (!has_path) env.push_back(std::string("PATH=") + kDefaultPath);
  return env;
}

StepResult StartApp(const control::InstanceSpec& spec, AppProcess* app) {
  ExecPlan plan;
  plan.env_storage = AppEnvironment(spec);
  for (const std::string& a : spec.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  for (std::string& kv : plan.env_storage) {
    plan.envp.push_back(kv.data());
    if (kv.compare(0, 5, "PATH=") == 0) plan.search_path = kv.c_str() + 5;
  }
  plan.envp.push_back(nullptr);
  if (!spec.working_dir.empty()) plan.working_dir = spec.working_dir.c_str();
  plan.uid = spec.uid;
  plan.gid = spec.gid;
  // Root may become anyone. Otherwise (test mode as an ordinary user) only the current ids.
  plan.change_ids = geteuid() == 0 || spec.uid != getuid() || spec.gid != getgid();

  UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) return StepFail(errno, "open(/dev/null)");
  UniqueFd out_r, out_w, err_r, err_w, fail_r, fail_w;
  if (StepResult r = MakePipe(&out_r, &out_w, "stdout"); !r.ok()) return r;
  if (StepResult r = MakePipe(&err_r, &err_w, "stderr"); !r.ok()) return r;
  if (StepResult r = MakePipe(&fail_r, &fail_w, "exec report"); !r.ok()) return r;
  plan.stdin_fd = dev_null.get();
  plan.stdout_fd = out_w.get();
  plan.stderr_fd = err_w.get();
  plan.error_fd = fail_w.get();

  pid_t pid = fork();
  if (pid < 0) return StepFail(errno, "fork(app)");
  if (pid == 0) RunChild(plan);

  fail_w.Reset();  // the child's copy closes on execve: EOF means it ran
  ChildFailure failure;
  ssize_t n;
  do {
    n = read(fail_r.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(failure)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return StepFail(failure.err, DescribeFailure(failure, spec));
  }
  app->pid = pid;
  app->stdout_read = std::move(out_r);
  app->stderr_read = std::move(err_r);
  return StepOk();
}

}  // namespace skiff::gen2::init
