// skiff-tap-guest --tap NAME --control-socket PATH -- PROGRAM [ARGS...]
//
// The guest's side of a gen2 instance, for hosts whose /dev/kvm cannot boot a guest
// (fake-vmm, tests/support/fake_vmm.sh.in). It does what skiff-vmm does with the
// instance's tap and control socket, with a network namespace standing in for the guest:
//   1. connects to the control socket PATH, as skiff-vmm does (the shim accepts only its
//      VMM's pid, so the connection must be this process's), and hands it to PROGRAM as
//      fd 3 — the guest's end of the channel (PROGRAM: skiff-init --control=fd:3);
//   2. attaches to the host tap NAME (IFF_TAP | IFF_NO_PI, as skiff-vmm does);
//   3. enters a new network namespace and creates a tap "eth0" there — the guest's NIC,
//      which skiff-init --test --test-network then configures like the real guest's;
//   4. runs PROGRAM in that namespace (killed if this process dies: it is the "VM");
//   5. copies Ethernet frames between the two taps, each frame whole, dropping one the
//      other side cannot take (a NIC's behaviour), until PROGRAM exits;
//   6. exits with PROGRAM's status (128 + signal if it was killed).
// Errors name the step and go to stderr (the instance's vmm.log); the exit code is 125.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/devices/virtio/tap.h"

namespace {

constexpr int kSetupFailed = 125;
constexpr int kControlFd = 3;  // the control channel's fd in PROGRAM
// One frame: a 1500-byte MTU plus the Ethernet header, with room for a larger MTU.
constexpr size_t kMaxFrame = 65536;
// Frames copied per wake-up per direction, so one busy direction cannot starve the other.
constexpr int kBatch = 64;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "skiff-tap-guest: %s\n", what.c_str());
  std::exit(kSetupFailed);
}

[[noreturn]] void FailErrno(const std::string& what) { Fail(what + ": " + std::strerror(errno)); }

// Copies up to kBatch frames from `from` to `to`. A frame `to` cannot take is dropped.
void Copy(int from, int to, char* buf) {
  for (int i = 0; i < kBatch; ++i) {
    ssize_t n = read(from, buf, kMaxFrame);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      FailErrno("read from a tap");
    }
    if (n == 0) return;
    if (write(to, buf, static_cast<size_t>(n)) < 0 && errno != EAGAIN && errno != ENOBUFS &&
        errno != EIO) {
      FailErrno("write to a tap");
    }
  }
}

skiff::UniqueFd ConnectControl(const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    Fail("--control-socket " + path + ": empty or too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  skiff::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) FailErrno("socket(AF_UNIX)");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    FailErrno("connect(" + path + ")");
  }
  return fd;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kSetupFailed;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "usage: skiff-tap-guest --tap NAME --control-socket PATH -- PROGRAM [ARGS...]";
  std::string tap, control_path;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--tap" && i + 1 < argc) {
      tap = argv[++i];
    } else if (arg == "--control-socket" && i + 1 < argc) {
      control_path = argv[++i];
    } else if (arg == "--") {
      ++i;
      break;
    } else {
      Fail(std::string(kUsage) + " (got " + std::string(arg) + ")");
    }
  }
  if (tap.empty() || control_path.empty() || i >= argc) Fail(kUsage);

  skiff::UniqueFd control = ConnectControl(control_path);
  absl::StatusOr<skiff::UniqueFd> host = skiff::gen2::virtio::OpenTap(tap);
  if (!host.ok()) Fail("host side: " + host.status().ToString());
  if (unshare(CLONE_NEWNET) != 0) FailErrno("unshare(CLONE_NEWNET)");
  absl::StatusOr<skiff::UniqueFd> guest = skiff::gen2::virtio::OpenTap("eth0");
  if (!guest.ok()) Fail("guest side: " + guest.status().ToString());

  // SIGCHLD is read from a signalfd; SIGTERM and SIGKILL keep their default (the VM dies,
  // and PR_SET_PDEATHSIG takes the program with it).
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, nullptr) != 0) FailErrno("sigprocmask");
  skiff::UniqueFd sigfd(signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) FailErrno("signalfd");

  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) FailErrno("fork");
  if (child == 0) {
    sigprocmask(SIG_UNBLOCK, &chld, nullptr);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(kSetupFailed);
    // fd 3 without FD_CLOEXEC (dup2 onto itself would keep the flag).
    const bool handed = control.get() == kControlFd ? fcntl(kControlFd, F_SETFD, 0) == 0
                                                    : dup2(control.get(), kControlFd) == kControlFd;
    if (!handed) _exit(kSetupFailed);
    execv(argv[i], argv + i);
    std::fprintf(stderr, "skiff-tap-guest: execv(%s): %s\n", argv[i], std::strerror(errno));
    _exit(127);
  }

  control.Reset();  // the program's now
  static char buf[kMaxFrame];
  pollfd fds[3] = {{host->get(), POLLIN, 0}, {guest->get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
  for (;;) {
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      FailErrno("poll");
    }
    if (fds[0].revents & POLLIN) Copy(host->get(), guest->get(), buf);
    if (fds[1].revents & POLLIN) Copy(guest->get(), host->get(), buf);
    if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) {
      Fail("a tap reported an error or hang-up");
    }
    if (fds[2].revents & POLLIN) {
      signalfd_siginfo si;
      while (read(sigfd.get(), &si, sizeof(si)) == sizeof(si)) {
      }
      int status = 0;
      pid_t done = waitpid(child, &status, WNOHANG);
      if (done == child) return ExitCodeOf(status);
    }
  }
}
