#include "sandbox/gen2/vmm/seccomp_filter.h"

#include <linux/kvm.h>
#include <seccomp.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "absl/base/internal/sysinfo.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"

namespace skiff::gen2 {
namespace {

struct ScmpCtx {
  scmp_filter_ctx ctx = nullptr;
  ~ScmpCtx() {
    if (ctx) seccomp_release(ctx);
  }
};

constexpr unsigned long kAllowedIoctls[] = {KVM_RUN, KVM_IRQ_LINE};

}  // namespace

const std::vector<const char*>& VmmAllowedSyscalls() {
  static const auto* kList = new std::vector<const char*>{
      // vCPU loop, kicks and the end of a vCPU thread.
      "rt_sigreturn", "rt_sigprocmask", "tgkill", "getpid", "gettid", "futex", "sched_yield",
      // abseil's Mutex reads a waiting thread's priority (pthread_getschedparam).
      "sched_getparam", "sched_getscheduler", "restart_syscall", "exit", "exit_group", "rseq",
      // Time (the vDSO covers most; the fallbacks).
      "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday",
      // The allocator, and thread stacks released at join.
      "mmap", "munmap", "mprotect", "madvise", "brk", "mremap",
      // Devices: the console log, disk images, the tap, eventfds, the control socket.
      "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
      "pwritev2", "fsync", "fdatasync", "lseek", "fstat", "close", "recvfrom", "sendto", "recvmsg",
      "sendmsg", "accept4", "shutdown",
      // The device thread's event loop.
      "epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll"};
  return *kList;
}

absl::Status InstallVmmSeccompFilter() {
  // Work the process would otherwise do lazily under the filter, and be killed for: abseil's
  // Mutex counts the CPUs (opening /sys/devices/system/cpu/online) the first time a lock is
  // contended. It caches the answer.
  (void)absl::base_internal::NumCPUs();
  // The devices log through spdlog: its registry and default logger are created on first
  // use (the color sink asks isatty(), an ioctl), and each message's local time needs the
  // time zone (read from /etc/localtime once).
  (void)spdlog::default_logger_raw();
  tzset();
  ScmpCtx c;
  c.ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (c.ctx == nullptr) return absl::InternalError("seccomp_init: failed");
  int rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 1);
  if (rc == 0) rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc != 0) return ErrnoStatus(-rc, "seccomp_attr_set(NNP, TSYNC)");
  for (const char* name : VmmAllowedSyscalls()) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
      return absl::InternalError(absl::StrCat("seccomp: unknown syscall ", name));
    rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, nr, 0);
    if (rc != 0) return ErrnoStatus(-rc, "seccomp_rule_add(", name, ")");
  }
  for (unsigned long request : kAllowedIoctls) {
    rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, request));
    if (rc != 0) return ErrnoStatus(-rc, "seccomp_rule_add(ioctl ", request, ")");
  }
  rc = seccomp_load(c.ctx);
  if (rc != 0) return ErrnoStatus(-rc, "seccomp_load(vmm filter, TSYNC)");
  return absl::OkStatus();
}

}  // namespace skiff::gen2
