// The gen1 seccomp policy, installed in forked children (needs no privileges, but the
// controls that show a blocked call would otherwise succeed run as root).

#include "sandbox/gen1/seccomp_policy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "tests/support/status_matchers.h"
#include "tests/unit/sandbox_common/child_process.h"

namespace skiff::gen1 {
namespace {

using ::skiff::testing::DeathSignal;
using ::skiff::testing::ExitCode;
using ::skiff::testing::RunInChild;

// errno of a raw syscall with all-zero arguments (0 if it succeeded).
int ZeroArgErrno(long nr) { return syscall(nr, 0, 0, 0, 0, 0, 0) == -1 ? errno : 0; }

class SeccompPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIFF_ASSERT_OK_AND_ASSIGN(program_, BuildDefaultPolicy()); }
  // Runs fn() under the policy in a child; returns the wait status.
  template <typename Fn>
  int Filtered(Fn fn) {
    return RunInChild([&] {
      if (int err = InstallSeccompProgram(program_)) return 200 + err;
      return fn();
    });
  }
  SeccompProgram program_;
};

TEST_F(SeccompPolicyTest, ProgramIsSaneAndEmptyIsRefused) {
  EXPECT_GT(program_.size(), 20u);
  EXPECT_LE(program_.size(), static_cast<size_t>(BPF_MAXINSNS));
  EXPECT_EQ(InstallSeccompProgram(SeccompProgram()), EINVAL);
  for (const char* required : {"mount",
                               "umount2",
                               "pivot_root",
                               "kexec_load",
                               "kexec_file_load",
                               "init_module",
                               "finit_module",
                               "delete_module",
                               "bpf",
                               "perf_event_open",
                               "ptrace",
                               "keyctl",
                               "add_key",
                               "request_key",
                               "userfaultfd",
                               "unshare",
                               "setns",
                               "io_uring_setup",
                               "io_uring_enter",
                               "io_uring_register",
                               "reboot",
                               "swapon",
                               "swapoff",
                               "open_by_handle_at"}) {
    EXPECT_THAT(DefaultDeniedSyscalls(), ::testing::Contains(required));
  }
}

TEST_F(SeccompPolicyTest, BlockedSyscallsFailWithEperm) {
  const std::pair<const char*, long> blocked[] = {
      {"mount", SYS_mount},
      {"umount2", SYS_umount2},
      {"pivot_root", SYS_pivot_root},
      {"kexec_load", SYS_kexec_load},
      {"kexec_file_load", SYS_kexec_file_load},
      {"init_module", SYS_init_module},
      {"finit_module", SYS_finit_module},
      {"delete_module", SYS_delete_module},
      {"bpf", SYS_bpf},
      {"perf_event_open", SYS_perf_event_open},
      {"ptrace", SYS_ptrace},
      {"keyctl", SYS_keyctl},
      {"add_key", SYS_add_key},
      {"request_key", SYS_request_key},
      {"userfaultfd", SYS_userfaultfd},
      {"unshare", SYS_unshare},
      {"setns", SYS_setns},
      {"io_uring_setup", SYS_io_uring_setup},
      {"io_uring_enter", SYS_io_uring_enter},
      {"io_uring_register", SYS_io_uring_register},
      {"reboot", SYS_reboot},
      {"swapon", SYS_swapon},
      {"swapoff", SYS_swapoff},
      {"open_by_handle_at", SYS_open_by_handle_at},
      {"fsopen", SYS_fsopen},
      {"move_mount", SYS_move_mount},
      {"process_vm_readv", SYS_process_vm_readv},
  };
  for (const auto& [name, nr] : blocked) {
    const int st = Filtered([nr = nr] { return ZeroArgErrno(nr); });
    EXPECT_EQ(ExitCode(st), EPERM) << name << " wait status " << st;
  }
}

TEST_F(SeccompPolicyTest, NamespaceCreationBlockedButAllowedWithoutThePolicy) {
  // Controls: as root these succeed without the policy.
  EXPECT_EQ(ExitCode(RunInChild([] { return unshare(CLONE_NEWUTS) == 0 ? 0 : errno; })), 0);
  EXPECT_EQ(ExitCode(Filtered([] { return unshare(CLONE_NEWUTS) == 0 ? 0 : errno; })), EPERM);

  auto clone_ns = [](unsigned long flag) {
    return [flag] {
      long pid = syscall(SYS_clone, flag | SIGCHLD, 0, 0, 0, 0);
      if (pid == 0) _exit(0);
      if (pid < 0) return errno;
      waitpid(static_cast<pid_t>(pid), nullptr, 0);
      return 0;
    };
  };
  for (unsigned long flag : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                             CLONE_NEWNET, CLONE_NEWCGROUP}) {
    EXPECT_EQ(ExitCode(RunInChild(clone_ns(flag))), 0) << std::hex << flag;
    EXPECT_EQ(ExitCode(Filtered(clone_ns(flag))), EPERM) << std::hex << flag;
  }
  // clone3 says ENOSYS so libc falls back to clone().
  EXPECT_EQ(ExitCode(Filtered([] { return ZeroArgErrno(SYS_clone3); })), ENOSYS);
  // setns on a real namespace fd.
  EXPECT_EQ(ExitCode(Filtered([] {
              int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
              return syscall(SYS_setns, fd, 0) == 0 ? 0 : errno;
            })),
            EPERM);
}

TEST_F(SeccompPolicyTest, OtherAbisAreKilled) {
  // x32: the x32 syscall bit on getpid.
  EXPECT_EQ(
      DeathSignal(Filtered([] { return static_cast<int>(syscall(0x40000000 | SYS_getpid)); })),
      SIGSYS);
  // i386: int 0x80 with eax = 20 (getpid in the i386 table).
  EXPECT_EQ(DeathSignal(Filtered([] {
              long ret = 20;
              asm volatile("int $0x80" : "+a"(ret) : : "memory");
              return static_cast<int>(ret & 0x7f);
            })),
            SIGSYS);
}

TEST_F(SeccompPolicyTest, SyscallsNewerThanThePolicyAreEnosys) {
  // cachestat (451): without the policy this kernel answers EBADF for fd -1.
  auto cachestat = [] { return syscall(451, -1, 0, 0, 0) == -1 ? errno : 0; };
  EXPECT_EQ(ExitCode(RunInChild(cachestat)), EBADF);
  EXPECT_EQ(ExitCode(Filtered(cachestat)), ENOSYS);
  EXPECT_EQ(ExitCode(Filtered([] { return ZeroArgErrno(467); })), ENOSYS);  // open_tree_attr
  // The last reviewed one is still subject to the ordinary rules (allowed here).
  EXPECT_NE(ExitCode(Filtered([] { return ZeroArgErrno(450); })), ENOSYS);
}

void* ThreadBody(void* arg) {
  *static_cast<int*>(arg) = 42;
  return nullptr;
}

TEST_F(SeccompPolicyTest, OrdinarySyscallsStillWork) {
  const int st = Filtered([] {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return 1;
    if (write(p[1], "x", 1) != 1) return 2;
    char c;
    if (read(p[0], &c, 1) != 1 || c != 'x') return 3;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 4;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(s, 1) != 0) return 5;
    pid_t pid = fork();  // glibc: clone() without namespace flags
    if (pid == 0) _exit(7);
    int wst = 0;
    if (pid < 0 || waitpid(pid, &wst, 0) != pid || ExitCode(wst) != 7) return 6;
    pthread_t t;  // glibc tries clone3 first and falls back on ENOSYS
    int v = 0;
    if (pthread_create(&t, nullptr, ThreadBody, &v) != 0 || pthread_join(t, nullptr) != 0 ||
        v != 42)
      return 8;
    return 0;
  });
  EXPECT_EQ(ExitCode(st), 0) << "wait status " << st;
}

TEST_F(SeccompPolicyTest, PolicySurvivesExecve) {
  auto exec = [](const char* applet, const char* arg) {
    return [=] {
      const char* argv[] = {"busybox", applet, arg, "true", nullptr};
      if (arg == nullptr) argv[2] = nullptr;
      execv("/bin/busybox", const_cast<char* const*>(argv));
      return 127;
    };
  };
  EXPECT_EQ(ExitCode(Filtered(exec("true", nullptr))), 0);
  // busybox unshare -u true: works without the policy, fails under it after execve.
  EXPECT_EQ(ExitCode(RunInChild(exec("unshare", "-u"))), 0);
  EXPECT_NE(ExitCode(Filtered(exec("unshare", "-u"))), 0);
}

}  // namespace
}  // namespace skiff::gen1
