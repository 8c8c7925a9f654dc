#include "sandbox/gen1/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sandbox/common/net.h"
#include "sandbox/common/status.h"
#include "sandbox/gen1/capabilities.h"
#include "sandbox/gen1/child_context.h"
#include "sandbox/gen1/child_steps.h"
#include "sandbox/gen1/etc_files.h"
#include "sandbox/gen1/seccomp_policy.h"

namespace skiff::gen1 {

namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kMaxMountData = 4095;  // mount(2) data is one page
constexpr int kStartTimeoutMs = 60000;

// Mirrors struct clone_args (v0, 64 bytes) without <linux/sched.h>'s macro clashes.
struct CloneArgs {
  uint64_t flags = 0;
  uint64_t pidfd = 0;
  uint64_t child_tid = 0;
  uint64_t parent_tid = 0;
  uint64_t exit_signal = 0;
  uint64_t stack = 0;
  uint64_t stack_size = 0;
  uint64_t tls = 0;
};

// Owns everything the children read (ChildContext points into it).
struct PreparedChild {
  std::string hostname;
  std::string layer_dir, tmpfs_data, upper_dir, work_dir, merged_dir, overlay_data;
  std::string etc_paths[kEtcFileCount];
  std::string etc_contents[kEtcFileCount];
  std::string ifname;
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, envp;
  std::string search_path, working_dir;
  std::vector<gid_t> groups;
  std::vector<std::string> lower_dirs;
  std::vector<std::string> lower_links;
  std::vector<const char*> lower_link_ptrs, lower_dir_ptrs;
  SeccompProgram seccomp;
  CapabilitySet capabilities;
  ChildContext ctx;
};

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

absl::Status ValidatePath(const std::string& field, const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(field, " (", path, "): not an absolute path"));
  }
  if (HasNul(path) || path.find_first_of(",:\\\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " (", path, "): contains one of NUL , : \\ newline"));
  }
  return absl::OkStatus();
}

absl::Status CheckDirectory(const std::string& field, const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat ", field, " (", path, ")");
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " (", path, "): not a directory"));
  }
  return absl::OkStatus();
}

bool ValidHostname(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return true;
}

absl::Status ValidateSpec(const SandboxSpec& spec) {
  if (!ValidHostname(spec.hostname)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hostname (", spec.hostname, "): want 1-63 of [A-Za-z0-9.-]"));
  }
  SKIFF_RETURN_IF_ERROR(ValidatePath("run_dir", spec.run_dir));
  SKIFF_RETURN_IF_ERROR(CheckDirectory("run_dir", spec.run_dir));
  if (spec.lower_dirs.empty()) return absl::InvalidArgumentError("lower_dirs: empty");
  for (size_t i = 0; i < spec.lower_dirs.size(); ++i) {
    std::string field = absl::StrCat("lower_dirs[", i, "]");
    SKIFF_RETURN_IF_ERROR(ValidatePath(field, spec.lower_dirs[i]));
    SKIFF_RETURN_IF_ERROR(CheckDirectory(field, spec.lower_dirs[i]));
  }
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("argv: empty (no program to run)");
  }
  for (size_t i = 0; i < spec.argv.size(); ++i) {
    if (HasNul(spec.argv[i])) {
      return absl::InvalidArgumentError(absl::StrCat("argv[", i, "]: contains NUL"));
    }
  }
  for (size_t i = 0; i < spec.env.size(); ++i) {
    const std::string& e = spec.env[i];
    size_t eq = e.find('=');
    if (HasNul(e) || eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("env[", i, "] (", e, "): want K=V"));
    }
  }
  if (!spec.working_dir.empty() && (spec.working_dir[0] != '/' || HasNul(spec.working_dir))) {
    return absl::InvalidArgumentError(
        absl::StrCat("working_dir (", spec.working_dir, "): not an absolute path"));
  }
  if (spec.cgroup_path.empty() || spec.cgroup_path[0] == '/' ||
      absl::StrContains(spec.cgroup_path, "..") || HasNul(spec.cgroup_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup_path (", spec.cgroup_path, "): want a relative path without .."));
  }
  if (!spec.veth.host_ifname.empty() &&
      (spec.veth.host_ifname.size() > 15 || HasNul(spec.veth.host_ifname))) {
    return absl::InvalidArgumentError(
        absl::StrCat("host_veth (", spec.veth.host_ifname, "): want 1-15 characters"));
  }
  return absl::OkStatus();
}

std::string ReadHostResolvConf() {
  std::ifstream in("/etc/resolv.conf");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::unique_ptr<PreparedChild>> Prepare(const SandboxSpec& spec) {
  auto p = std::make_unique<PreparedChild>();
  p->hostname = spec.hostname;
  p->layer_dir = absl::StrCat(spec.run_dir, "/rootfs");
  p->tmpfs_data = spec.limits.memory_bytes > 0
                      ? absl::StrCat("size=", spec.limits.memory_bytes, ",mode=0755")
                      : std::string("mode=0755");
  p->upper_dir = absl::StrCat(p->layer_dir, "/upper");
  p->work_dir = absl::StrCat(p->layer_dir, "/work");
  p->merged_dir = absl::StrCat(p->layer_dir, "/merged");
  p->lower_dirs = spec.lower_dirs;
  // The overlay is mounted from inside layer_dir with relative names (l0 → lower_dirs[0]
  // as a symlink in the tmpfs): the instance's mountinfo shows no host path, and the
  // options stay short however many layers there are.
  std::vector<std::string> lower_names;
  for (size_t i = 0; i < spec.lower_dirs.size(); ++i) {
    lower_names.push_back(absl::StrCat("l", i));
    p->lower_links.push_back(absl::StrCat(p->layer_dir, "/l", i));
  }
  p->overlay_data =
      absl::StrCat("lowerdir=", absl::StrJoin(lower_names, ":"), ",upperdir=upper,workdir=work");
  if (p->overlay_data.size() > kMaxMountData) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lower_dirs: overlay options are ", p->overlay_data.size(), " bytes, more than one page"));
  }
  p->etc_paths[0] = "/etc/hosts";
  p->etc_contents[0] = HostsFileContent(spec.hostname, spec.veth.instance_ip);
  p->etc_paths[1] = "/etc/hostname";
  p->etc_contents[1] = HostnameFileContent(spec.hostname);
  p->etc_paths[2] = "/etc/resolv.conf";
  p->etc_contents[2] = ResolvConfContent(ReadHostResolvConf());

  ChildContext& c = p->ctx;
  if (!spec.veth.host_ifname.empty()) {
    SKIFF_ASSIGN_OR_RETURN(c.instance_ip_be, ParseIpv4(spec.veth.instance_ip));
    SKIFF_ASSIGN_OR_RETURN(c.host_ip_be, ParseIpv4(spec.veth.host_ip));
    if (spec.veth.prefix_len == 0 || spec.veth.prefix_len > 31) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix_len (", spec.veth.prefix_len, "): want 1..31"));
    }
    p->ifname = spec.veth.instance_ifname.empty() ? "eth0" : spec.veth.instance_ifname;
    c.has_veth = true;
    c.ifname = p->ifname.c_str();
    c.prefix_len = spec.veth.prefix_len;
  }

  p->argv_storage = spec.argv;
  for (std::string& a : p->argv_storage) p->argv.push_back(a.data());
  p->argv.push_back(nullptr);
  p->env_storage = spec.env;
  p->search_path = kDefaultPath;
  for (std::string& e : p->env_storage) {
    p->envp.push_back(e.data());
    if (absl::StartsWith(e, "PATH=")) p->search_path = e.substr(5);
  }
  p->envp.push_back(nullptr);
  p->working_dir = spec.working_dir.empty() ? "/" : spec.working_dir;
  for (uint32_t g : spec.additional_gids) p->groups.push_back(static_cast<gid_t>(g));

  SKIFF_ASSIGN_OR_RETURN(p->seccomp, BuildDefaultPolicy());
  SKIFF_ASSIGN_OR_RETURN(p->capabilities, PrepareDefaultCapabilities());

  c.hostname = p->hostname.c_str();
  c.layer_dir = p->layer_dir.c_str();
  c.tmpfs_data = p->tmpfs_data.c_str();
  c.upper_dir = p->upper_dir.c_str();
  c.work_dir = p->work_dir.c_str();
  c.merged_dir = p->merged_dir.c_str();
  c.overlay_data = p->overlay_data.c_str();
  for (size_t i = 0; i < p->lower_dirs.size(); ++i) {
    p->lower_dir_ptrs.push_back(p->lower_dirs[i].c_str());
    p->lower_link_ptrs.push_back(p->lower_links[i].c_str());
  }
  c.lower_dirs = p->lower_dir_ptrs.data();
  c.lower_links = p->lower_link_ptrs.data();
  c.lower_count = p->lower_dirs.size();
  for (size_t i = 0; i < kEtcFileCount; ++i) {
    c.etc_files[i] = {p->etc_paths[i].c_str(), p->etc_contents[i].data(),
                      p->etc_contents[i].size()};
  }
  c.argv = p->argv.data();
  c.envp = p->envp.data();
  c.search_path = p->search_path.c_str();
  c.working_dir = p->working_dir.c_str();
  c.uid = static_cast<uid_t>(spec.uid);
  c.gid = static_cast<gid_t>(spec.gid);
  c.groups = p->groups.data();
  c.group_count = p->groups.size();
  c.seccomp = &p->seccomp;
  c.capabilities = &p->capabilities;
  return p;
}

// The argument a failed step's message names.
std::string StepArgument(const PreparedChild& p, const ChildError& e) {
  switch (e.step) {
    case ChildStep::kMountTmpfsLayer:
      return absl::StrCat(p.layer_dir, ", ", p.tmpfs_data);
    case ChildStep::kMkdirLayer:
      return e.arg == 0 ? p.upper_dir : e.arg == 1 ? p.work_dir : p.merged_dir;
    case ChildStep::kMountOverlay:
      return absl::StrCat(p.merged_dir, ", lowerdir=", absl::StrJoin(p.lower_dirs, ":"));
    case ChildStep::kLinkLowerDir:
      return e.arg >= 0 && e.arg < static_cast<int>(p.lower_dirs.size()) ? p.lower_dirs[e.arg] : "";
    case ChildStep::kPivotRoot:
      return p.merged_dir;
    case ChildStep::kMakeDevNode:
      return DevNodePath(e.arg);
    case ChildStep::kDevSymlink:
      return DevLinkPath(e.arg);
    case ChildStep::kWriteEtcFile:
      return e.arg >= 0 && e.arg < static_cast<int>(kEtcFileCount) ? p.etc_paths[e.arg] : "";
    case ChildStep::kConfigureNetwork:
      return p.ifname.empty() ? "lo" : p.ifname;
    case ChildStep::kSetHostname:
      return p.hostname;
    case ChildStep::kSetUid:
      return absl::StrCat(p.ctx.uid);
    case ChildStep::kSetGid:
      return absl::StrCat(p.ctx.gid);
    case ChildStep::kChdir:
      return p.working_dir;
    case ChildStep::kExecve:
      return p.argv_storage[0];
    default:
      return "";
  }
}

absl::Status ChildErrorStatus(const PreparedChild& p, const ChildError& e) {
  std::string arg = StepArgument(p, e);
  return ErrnoStatus(e.err, "start sandbox: ", ChildStepName(e.step),
                     arg.empty() ? "" : absl::StrCat(" (", arg, ")"));
}

absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakePipe(int extra_flags = 0) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | extra_flags) != 0) return ErrnoStatus(errno, "pipe2");
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

// Waits for the error pipe: EOF means the app's execve() succeeded.
absl::Status AwaitExec(int error_fd, const PreparedChild& p, int timeout_ms) {
  struct pollfd pfd = {error_fd, POLLIN, 0};
  int r;
  do {
    r = poll(&pfd, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ErrnoStatus(errno, "poll(sandbox error pipe)");
  if (r == 0) {
    return absl::DeadlineExceededError(
        absl::StrCat("start sandbox: no execve within ", timeout_ms, " ms"));
  }
  ChildError rec;
  ssize_t n;
  do {
    n = read(error_fd, &rec, sizeof(rec));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return absl::OkStatus();
  if (n != static_cast<ssize_t>(sizeof(rec))) {
    return absl::InternalError(absl::StrCat("start sandbox: short error record (", n, " bytes)"));
  }
  return ChildErrorStatus(p, rec);
}

// A child's error record if one is already there (waits briefly for the init to write
// it when it died).
std::optional<absl::Status> PendingChildError(int error_fd, const PreparedChild& p) {
  absl::Status st = AwaitExec(error_fd, p, 100);
  if (st.ok() || absl::IsDeadlineExceeded(st)) return std::nullopt;
  return st;
}

// The veth set-up, run on its own thread while the parent migrates the init into its
// cgroup.
struct VethJob {
  const VethConfig* config;
  pid_t netns_pid;
  absl::Status status;
};

void* RunVethJob(void* arg) {
  auto* job = static_cast<VethJob*>(arg);
  job->status = CreateVethPair(*job->config, job->netns_pid);
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Gen1Sandbox>> Gen1Sandbox::Start(const SandboxSpec& spec) {
  SKIFF_RETURN_IF_ERROR(ValidateSpec(spec));
  SKIFF_ASSIGN_OR_RETURN(std::unique_ptr<PreparedChild> prep, Prepare(spec));
  // From here on, the sandbox's destructor unwinds whatever was built.
  std::unique_ptr<Gen1Sandbox> sb(new Gen1Sandbox);
  SKIFF_ASSIGN_OR_RETURN(CgroupRoots roots, CgroupRoots::Detect());
  SKIFF_ASSIGN_OR_RETURN(sb->cgroup_, Cgroup::Create(roots, spec.cgroup_path, spec.limits));
  // A crashed predecessor may have left the (empty) mount point: reuse it.
  if (mkdir(prep->layer_dir.c_str(), 0700) != 0 &&
      (errno != EEXIST || rmdir(prep->layer_dir.c_str()) != 0 ||
       mkdir(prep->layer_dir.c_str(), 0700) != 0)) {
    return ErrnoStatus(errno, "mkdir(", prep->layer_dir, ")");
  }
  sb->layer_dir_ = prep->layer_dir;

  SKIFF_ASSIGN_OR_RETURN(auto release, MakePipe());
  SKIFF_ASSIGN_OR_RETURN(auto error, MakePipe());
  SKIFF_ASSIGN_OR_RETURN(auto exit_report, MakePipe(O_NONBLOCK));
  UniqueFd dev_null(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!dev_null) return ErrnoStatus(errno, "open(/dev/null)");
  ChildContext& c = prep->ctx;
  c.release_fd = release.first.get();
  c.error_fd = error.second.get();
  c.exit_fd = exit_report.second.get();
  c.stdin_fd = dev_null.get();
  c.stdout_fd = spec.stdout_fd >= 0 ? spec.stdout_fd : dev_null.get();
  c.stderr_fd = spec.stderr_fd >= 0 ? spec.stderr_fd : dev_null.get();

  int pidfd = -1;
  CloneArgs args;
  args.flags =
      CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid < 0) return ErrnoStatus(errno, "clone3(new namespaces)");
  if (pid == 0) RunInit(prep->ctx);  // never returns

  sb->init_pid_ = static_cast<pid_t>(pid);
  sb->pidfd_ = UniqueFd(pidfd);
  sb->exit_report_ = std::move(exit_report.first);
  release.first.Reset();
  error.second.Reset();
  exit_report.second.Reset();
  dev_null.Reset();

  absl::Status parent_steps = sb->ConfigureFromHost(spec, release.second.get());
  release.second.Reset();
  if (!parent_steps.ok()) {
    // If the init failed first, its record says why (the parent step only saw ESRCH).
    return PendingChildError(error.first.get(), *prep).value_or(parent_steps);
  }
  SKIFF_RETURN_IF_ERROR(AwaitExec(error.first.get(), *prep, kStartTimeoutMs));
  return sb;
}

// Host-side steps between clone and release: cgroup, veth, then the release byte.
// The cgroup migration (on v1 it waits for an RCU grace period, ~15 ms) and the veth
// set-up over netlink (~3.5 ms) are independent: the veth is created on a short-lived
// thread meanwhile.
absl::Status Gen1Sandbox::ConfigureFromHost(const SandboxSpec& spec, int release_fd) {
  VethJob veth{&spec.veth, init_pid_, absl::OkStatus()};
  bool veth_wanted = !spec.veth.host_ifname.empty();
  pthread_t veth_thread;
  // If no thread can be had, the veth is created serially after the migration.
  bool threaded = veth_wanted && pthread_create(&veth_thread, nullptr, &RunVethJob, &veth) == 0;
  absl::Status moved = cgroup_->AddProcess(init_pid_);
  if (threaded) pthread_join(veth_thread, nullptr);
  if (veth_wanted && !threaded && moved.ok()) RunVethJob(&veth);
  if (veth_wanted && (threaded || moved.ok()) && veth.status.ok()) {
    host_veth_ = spec.veth.host_ifname;  // Destroy() removes it
  }
  SKIFF_RETURN_IF_ERROR(moved);
  SKIFF_RETURN_IF_ERROR(veth.status);
  if (write(release_fd, "g", 1) != 1) return ErrnoStatus(errno, "release sandbox init");
  return absl::OkStatus();
}

Gen1Sandbox::~Gen1Sandbox() {
  if (init_pid_ > 0 && !reaped_) {
    (void)KillAll();
    int status;
    while (waitpid(init_pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  (void)Destroy();
}

absl::Status Gen1Sandbox::Signal(int sig) {
  if (!pidfd_ || reaped_) return absl::FailedPreconditionError("signal: init already reaped");
  if (syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0) {
    return ErrnoStatus(errno, "pidfd_send_signal(init ", init_pid_, ", ", sig, ")");
  }
  return absl::OkStatus();
}

absl::Status Gen1Sandbox::KillAll() {
  absl::Status st = absl::OkStatus();
  if (pidfd_ && !reaped_) {
    absl::Status s = Signal(SIGKILL);
    if (!s.ok() && !absl::IsNotFound(s)) st = s;
  }
  if (cgroup_) {
    absl::Status s = cgroup_->KillAll();
    if (st.ok()) st = s;
  }
  return st;
}

AppExit Gen1Sandbox::OnInitExited(int init_wait_status) {
  reaped_ = true;
  AppExit result;
  result.wait_status = init_wait_status;
  AppExitRecord rec;
  ssize_t n;
  do {
    n = read(exit_report_.get(), &rec, sizeof(rec));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(rec)) && rec.magic == kAppExitMagic) {
    result.reported = true;
    result.wait_status = rec.wait_status;
  }
  return result;
}

absl::StatusOr<AppExit> Gen1Sandbox::Wait() {
  if (reaped_) return absl::FailedPreconditionError("wait: init already reaped");
  int status = 0;
  pid_t r;
  do {
    r = waitpid(init_pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ErrnoStatus(errno, "waitpid(init ", init_pid_, ")");
  return OnInitExited(status);
}

absl::StatusOr<bool> Gen1Sandbox::OomKilled() const {
  if (!cgroup_) return false;
  return cgroup_->OomKilled();
}

absl::Status Gen1Sandbox::Destroy() {
  if (destroyed_) return absl::OkStatus();
  absl::Status st = absl::OkStatus();
  auto keep_first = [&st](const absl::Status& s) {
    if (st.ok() && !s.ok()) st = s;
  };
  if (cgroup_) {
    keep_first(cgroup_->KillAll());
    absl::Status s = cgroup_->Destroy();
    keep_first(s);
    if (s.ok()) cgroup_.reset();
  }
  if (!host_veth_.empty()) {
    absl::Status s = DeleteLink(host_veth_);
    if (s.ok() || absl::IsNotFound(s)) {
      host_veth_.clear();
    } else {
      keep_first(s);
    }
  }
  if (!layer_dir_.empty()) {
    if (rmdir(layer_dir_.c_str()) == 0 || errno == ENOENT) {
      layer_dir_.clear();
    } else {
      keep_first(ErrnoStatus(errno, "rmdir(", layer_dir_, ")"));
    }
  }
  destroyed_ = st.ok();
  return st;
}

}  // namespace skiff::gen1
