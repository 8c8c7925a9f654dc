#include "sandbox/gen1/seccomp_policy.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::gen1 {
namespace {

constexpr uint32_t kX32SyscallBit = 0x40000000;
// The newest x86_64 syscall this policy was reviewed against: set_mempolicy_home_node
// (450, the last one in Debian 12's kernel headers). Newer ones — including new mount
// API calls such as open_tree_attr that the denylist cannot name yet — get ENOSYS.
constexpr uint32_t kLastReviewedSyscall = 450;

// Namespace flags clone() may not carry (CLONE_NEWTIME only exists for clone3/unshare;
// in clone()'s flags its bit is part of the exit signal).
constexpr uint64_t kCloneNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                          CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                          CLONE_NEWNET;

// personality() values allowed (Docker's set): PER_LINUX, PER_LINUX32, UNAME26 with
// either, and 0xffffffff, the query. Not ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC & co.
constexpr uint64_t kAllowedPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

// socket() families allowed. AF_PACKET and raw sockets still need CAP_NET_RAW (not in
// the capability set); the rest (AF_ALG, AF_VSOCK, AF_KEY, AF_BLUETOOTH, AF_RDS, ...)
// are rarely needed kernel attack surface and fail with EPERM.
constexpr uint64_t kAllowedSocketFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET};

// Owns a libseccomp context.
struct ScmpCtx {
  scmp_filter_ctx ctx = nullptr;
  ~ScmpCtx() {
    if (ctx) seccomp_release(ctx);
  }
};

absl::Status ScmpError(int rc, const std::string& op) {
  return ErrnoStatus(-rc, "libseccomp ", op);
}

// Runs before the libseccomp program: anything not native x86_64 (i386 via int 0x80,
// x32 via the x32 syscall bit) kills the process, and syscalls newer than the ones this
// policy was reviewed against fail with ENOSYS, as on an older kernel (libc falls back).
// libseccomp checks the arch as well; this makes both cases explicit and independent
// of its version.
std::vector<sock_filter> Prologue() {
  return {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kX32SyscallBit, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, kLastReviewedSyscall, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
}

}  // namespace

const std::vector<std::string>& DefaultAllowedSyscalls() {
  // Reviewed one by one against the x86_64 table up to 450 (see docs/security.md);
  // modelled on the container-runtime default profile for a container without extra
  // capabilities. clone, personality and socket are allowed below with argument checks.
  static const auto* const kAllowed = new std::vector<std::string>{
      // Reading and writing through file descriptors.
      "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
      "pwritev2", "lseek", "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "close",
      "close_range", "dup", "dup2", "dup3", "fcntl", "flock", "fsync", "fdatasync", "sync",
      "syncfs", "sync_file_range", "truncate", "ftruncate", "fallocate", "fadvise64", "readahead",
      "ioctl",
      // Opening, inspecting and changing paths (permission checks and the read-only
      // mounts decide what succeeds).
      "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx",
      "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
      "getdents", "getdents64", "getcwd", "chdir", "fchdir", "chroot", "mkdir", "mkdirat", "rmdir",
      "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink",
      "unlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "umask",
      "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat", "setxattr", "lsetxattr",
      "fsetxattr", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
      "removexattr", "lremovexattr", "fremovexattr", "memfd_create", "inotify_init",
      "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
      // Memory.
      "brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "mlock",
      "mlock2", "munlock", "mlockall", "munlockall", "remap_file_pages", "pkey_alloc", "pkey_free",
      "pkey_mprotect", "membarrier", "get_mempolicy",
      // Threads and the C runtime.
      "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
      "futex_waitv", "restart_syscall",
      // Processes (clone: see the argument rule; clone3: ENOSYS).
      "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
      "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid",
      "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "prctl", "getpriority", "setpriority",
      "ioprio_get", "ioprio_set", "sched_yield", "sched_getaffinity", "sched_setaffinity",
      "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
      "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr",
      "sched_setattr", "getcpu", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times",
      "uname", "sysinfo",
      // Credentials (the capability set decides what may change).
      "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
      "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
      "setfsgid", "capget", "capset",
      // Self-restriction: further seccomp filters and Landlock can only take rights away.
      "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
      // Signals and timers.
      "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
      "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "pause", "signalfd",
      "signalfd4", "alarm", "getitimer", "setitimer", "timer_create", "timer_settime",
      "timer_gettime", "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime",
      "timerfd_gettime", "eventfd", "eventfd2",
      // Reading clocks and sleeping.
      "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
      // Waiting on many descriptors; POSIX AIO (not io_uring).
      "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
      "epoll_wait", "epoll_pwait", "epoll_pwait2", "io_setup", "io_destroy", "io_submit",
      "io_cancel", "io_getevents", "io_pgetevents",
      // IPC (System V and POSIX, in the instance's IPC namespace).
      "pipe", "pipe2", "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
      "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
      "mq_timedreceive", "mq_notify", "mq_getsetattr",
      // Sockets (socket: see the argument rule).
      "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
      "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "setsockopt",
      "getsockopt",
      // Randomness.
      "getrandom"};
  return *kAllowed;
}

const std::vector<std::string>& DefaultDeniedSyscalls() {
  static const auto* const kDenied = new std::vector<std::string>{
      // Mounts and the new mount API.
      "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
      "open_tree", "mount_setattr",
      // Kernel code and images.
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
      "create_module", "query_module", "get_kernel_syms", "uselib",
      // Tracing, profiling, introspection of other processes.
      "bpf", "perf_event_open", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
      "pidfd_getfd", "lookup_dcookie",
      // Keyrings (not namespaced).
      "keyctl", "add_key", "request_key",
      // Memory tricks that widen kernel race windows; NUMA policy of the host.
      "userfaultfd", "mbind", "set_mempolicy", "move_pages",
      // Namespaces: an instance gets its own and may not make or join others.
      "unshare", "setns",
      // io_uring bypasses this filter for the operations it performs.
      "io_uring_setup", "io_uring_enter", "io_uring_register",
      // Host-wide switches.
      "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "nfsservctl", "vhangup",
      "syslog", "settimeofday", "clock_settime", "clock_adjtime", "iopl", "ioperm", "sysfs",
      "_sysctl", "ustat",
      // Opening files by handle escapes a chroot/pivot_root ("shocker").
      "open_by_handle_at", "name_to_handle_at",
      // Also left out: host name (the UTS namespace is set up by skiff), reading or
      // steering the host clock, filesystem-wide notification, other processes' memory
      // and NUMA placement, 16-bit segments, secret memory.
      "sethostname", "setdomainname", "adjtimex", "fanotify_init", "fanotify_mark", "migrate_pages",
      "process_madvise", "process_mrelease", "set_mempolicy_home_node", "modify_ldt",
      "memfd_secret"};
  return *kDenied;
}

absl::StatusOr<SeccompProgram> BuildDefaultPolicy() {
  ScmpCtx c;
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  c.ctx = seccomp_init(eperm);
  if (c.ctx == nullptr) return absl::InternalError("libseccomp seccomp_init: failed");
  if (int rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0) {
    return ScmpError(rc, "seccomp_attr_set(ACT_BADARCH)");
  }
  const auto& denied = DefaultDeniedSyscalls();
  for (const std::string& name : DefaultAllowedSyscalls()) {
    if (std::find(denied.begin(), denied.end(), name) != denied.end()) {
      return absl::InternalError(
          absl::StrCat("seccomp policy: ", name, " is both allowed and denied"));
    }
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR || nr < 0) {
      return absl::InternalError(
          absl::StrCat("seccomp policy: ", name, " is not an x86_64 syscall"));
    }
    if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, nr, 0); rc < 0) {
      return ScmpError(rc, absl::StrCat("seccomp_rule_add(", name, ")"));
    }
  }
  // clone() without any namespace flag.
  if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, kCloneNamespaceFlags, 0));
      rc < 0) {
    return ScmpError(rc, "seccomp_rule_add(clone without namespace flags)");
  }
  if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc < 0) {
    return ScmpError(rc, "seccomp_rule_add(clone3)");
  }
  for (uint64_t persona : kAllowedPersonalities) {
    if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                                  SCMP_A0(SCMP_CMP_EQ, persona));
        rc < 0) {
      return ScmpError(rc, absl::StrCat("seccomp_rule_add(personality == ", persona, ")"));
    }
  }
  for (uint64_t family : kAllowedSocketFamilies) {
    if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  SCMP_A0(SCMP_CMP_EQ, family));
        rc < 0) {
      return ScmpError(rc, absl::StrCat("seccomp_rule_add(socket family == ", family, ")"));
    }
  }

  // Export: Debian 12's libseccomp (2.5) writes BPF to an fd only.
  UniqueFd mem(memfd_create("skiff-seccomp", MFD_CLOEXEC));
  if (!mem) return ErrnoStatus(errno, "memfd_create(skiff-seccomp)");
  if (int rc = seccomp_export_bpf(c.ctx, mem.get()); rc < 0) {
    return ScmpError(rc, "seccomp_export_bpf");
  }
  off_t len = lseek(mem.get(), 0, SEEK_END);
  if (len <= 0 || len % sizeof(sock_filter) != 0 || len > BPF_MAXINSNS * 8 * 4) {
    return absl::InternalError(absl::StrCat("libseccomp exported ", len, " bytes of BPF"));
  }
  std::vector<sock_filter> insns = Prologue();
  const size_t prologue = insns.size();
  insns.resize(prologue + static_cast<size_t>(len) / sizeof(sock_filter));
  if (pread(mem.get(), insns.data() + prologue, static_cast<size_t>(len), 0) != len) {
    return ErrnoStatus(errno, "pread(seccomp memfd)");
  }
  if (insns.size() > BPF_MAXINSNS) {
    return absl::InternalError(absl::StrCat("seccomp program has ", insns.size(),
                                            " instructions (max ", BPF_MAXINSNS, ")"));
  }
  return SeccompProgram(std::move(insns));
}

int InstallSeccompProgram(const SeccompProgram& program) {
  if (program.empty() || program.size() > BPF_MAXINSNS) return EINVAL;
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size());
  prog.filter = const_cast<sock_filter*>(program.data());
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  if (errno != ENOSYS) return errno;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0 ? 0 : errno;
}

}  // namespace skiff::gen1
