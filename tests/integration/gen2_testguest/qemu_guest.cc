#include "tests/integration/gen2_testguest/qemu_guest.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::gen2::testguest {

absl::StatusOr<std::unique_ptr<TempDir>> TempDir::Create(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return ErrnoStatus(errno, "mkdtemp(", tmpl, ")");
  return std::unique_ptr<TempDir>(new TempDir(tmpl));
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::StatusOr<std::unique_ptr<QemuGuest>> QemuGuest::Start(const QemuOptions& o,
                                                            const std::string& work_dir) {
  std::string serial = work_dir + "/serial.log";
  std::string log = work_dir + "/qemu.log";
  std::vector<std::string> args = {
      "qemu-system-x86_64",
      // acpi=off: microvm lists the virtio-mmio devices on the command line (the guest has
      // no ACPI); force-legacy=false: modern (version 2) virtio-mmio, as skiff's VMM.
      "-M", "microvm,acpi=off", "-global", "virtio-mmio.force-legacy=false", "-accel", "kvm",
      "-accel", "tcg", "-m", absl::StrCat(o.memory_mib), "-smp", absl::StrCat(o.vcpus), "-display",
      "none", "-nodefaults", "-no-user-config", "-no-reboot", "-serial", "file:" + serial,
      "-kernel", o.kernel, "-append", o.append};
  if (!o.initrd.empty()) {
    args.push_back("-initrd");
    args.push_back(o.initrd);
  }
  args.insert(args.end(), o.device_args.begin(), o.device_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  UniqueFd log_fd(open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!log_fd) return ErrnoStatus(errno, "open(", log, ")");
  UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) return ErrnoStatus(errno, "open(/dev/null)");
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork(qemu)");
  if (pid == 0) {
    // The child: its own process group (killed whole), no allocation before exec.
    setpgid(0, 0);
    dup2(null_fd.get(), STDIN_FILENO);
    dup2(log_fd.get(), STDOUT_FILENO);
    dup2(log_fd.get(), STDERR_FILENO);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent: no race with an early kill
  return std::unique_ptr<QemuGuest>(new QemuGuest(pid, serial, log));
}

QemuGuest::~QemuGuest() { Kill(); }

void QemuGuest::Kill() {
  if (pid_ <= 0) return;
  kill(-pid_, SIGKILL);
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string QemuGuest::Serial() const {
  absl::StatusOr<std::string> s = ReadFileToString(serial_path_);
  return s.ok() ? *s : "";
}

std::string QemuGuest::QemuLog() const {
  absl::StatusOr<std::string> s = ReadFileToString(log_path_);
  return s.ok() ? *s : "";
}

absl::StatusOr<GuestReport> QemuGuest::WaitUntil(
    const std::function<bool(const GuestReport&)>& ready, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    GuestReport report = ParseGuestOutput(Serial());
    if (ready(report)) return report;
    if (pid_ > 0) {
      int status;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        report = ParseGuestOutput(Serial());
        if (ready(report)) return report;
        return absl::FailedPreconditionError(absl::StrCat("qemu exited (status ", status,
                                                          ") before the guest got there; serial:\n",
                                                          Serial(), "\nqemu:\n", QemuLog()));
      }
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("guest not there after ",
                                                      absl::FormatDuration(timeout), "; serial:\n",
                                                      Serial(), "\nqemu:\n", QemuLog()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

absl::StatusOr<GuestReport> QemuGuest::WaitDone(absl::Duration timeout) {
  absl::StatusOr<GuestReport> r = WaitUntil([](const GuestReport& g) { return g.done; }, timeout);
  Kill();
  return r;
}

}  // namespace skiff::gen2::testguest
