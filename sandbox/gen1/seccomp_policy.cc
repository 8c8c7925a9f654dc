#include "sandbox/gen1/seccomp_policy.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

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

// Namespace flags clone() may not carry (CLONE_NEWTIME only exists for clone3/unshare).
constexpr uint64_t kCloneNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                             CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                             CLONE_NEWNET};

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
      "open_by_handle_at", "name_to_handle_at"};
  return *kDenied;
}

absl::StatusOr<SeccompProgram> BuildDefaultPolicy() {
  ScmpCtx c;
  c.ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (c.ctx == nullptr) return absl::InternalError("libseccomp seccomp_init: failed");
  if (int rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0) {
    return ScmpError(rc, "seccomp_attr_set(ACT_BADARCH)");
  }
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const std::string& name : DefaultDeniedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not an x86_64 syscall
    if (int rc = seccomp_rule_add(c.ctx, eperm, nr, 0); rc < 0) {
      return ScmpError(rc, absl::StrCat("seccomp_rule_add(", name, ")"));
    }
  }
  for (uint64_t flag : kCloneNamespaceFlags) {
    if (int rc = seccomp_rule_add(c.ctx, eperm, SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
        rc < 0) {
      return ScmpError(rc, absl::StrCat("seccomp_rule_add(clone & ", flag, ")"));
    }
  }
  if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc < 0) {
    return ScmpError(rc, "seccomp_rule_add(clone3)");
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
