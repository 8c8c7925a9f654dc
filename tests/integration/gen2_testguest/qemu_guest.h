#pragma once

// qemu-system-x86_64 -M microvm running the test guest: QEMU is the guest's reference
// VMM, so these tests prove the guest independently of skiff's own VMM.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/integration/gen2_testguest/testguest_output.h"

namespace skiff::gen2::testguest {

// mkdtemp under /tmp, removed recursively on destruction.
class TempDir {
 public:
  static absl::StatusOr<std::unique_ptr<TempDir>> Create(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

struct QemuOptions {
  std::string kernel;  // skiff-testguest.elf or .bzImage
  std::string append;  // the kernel command line
  std::string initrd;  // optional
  int vcpus = 1;
  int memory_mib = 64;
  std::vector<std::string> device_args;  // -drive/-device/-netdev/-chardev ...
};

class QemuGuest {
 public:
  // Starts QEMU in its own process group with COM1 in <work_dir>/serial.log and QEMU's
  // stderr in <work_dir>/qemu.log; KVM if it works, else TCG.
  static absl::StatusOr<std::unique_ptr<QemuGuest>> Start(const QemuOptions& options,
                                                          const std::string& work_dir);
  // Kills the process group and reaps QEMU.
  ~QemuGuest();
  QemuGuest(const QemuGuest&) = delete;
  QemuGuest& operator=(const QemuGuest&) = delete;

  // Waits until the parsed serial output satisfies `ready` (QEMU exiting or the time-out is
  // an error naming what was printed), and returns it.
  absl::StatusOr<GuestReport> WaitUntil(const std::function<bool(const GuestReport&)>& ready,
                                        absl::Duration timeout);
  // WaitUntil `tg: done`, then stops QEMU (the guest's i8042 reset does not end a microvm).
  absl::StatusOr<GuestReport> WaitDone(absl::Duration timeout);
  void Kill();

  std::string Serial() const;
  std::string QemuLog() const;

 private:
  QemuGuest(pid_t pid, std::string serial, std::string log)
      : pid_(pid), serial_path_(std::move(serial)), log_path_(std::move(log)) {}
  pid_t pid_;
  std::string serial_path_;
  std::string log_path_;
};

}  // namespace skiff::gen2::testguest
