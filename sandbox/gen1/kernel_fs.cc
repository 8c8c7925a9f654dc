// Fresh kernel filesystems for the instance: procfs (valid because the init is in the
// new PID namespace) and sysfs (valid read-only because of the new network namespace).

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/gen1/child_steps.h"

namespace skiff::gen1 {

namespace {

constexpr unsigned long kPseudoFsFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// Files that expose or control the host kernel: hidden behind /dev/null.
constexpr const char* kMaskedFiles[] = {"/proc/kcore", "/proc/sysrq-trigger", "/proc/timer_list",
                                        "/proc/keys", "/proc/latency_stats"};
// Directories made read-only.
constexpr const char* kReadOnlyDirs[] = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"};

bool Exists(const char* path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

}  // namespace

ChildError MountProc() {
  if (int err = MakeMountPoint("/proc", 0555); err != 0) {
    return ChildFail(ChildStep::kMountProc, err);
  }
  if (mount("proc", "/proc", "proc", kPseudoFsFlags, nullptr) != 0) {
    return ChildFail(ChildStep::kMountProc, errno);
  }
  int i = 0;
  for (const char* path : kMaskedFiles) {
    ++i;
    if (!Exists(path)) continue;
    if (mount("/dev/null", path, nullptr, MS_BIND, nullptr) != 0) {
      return ChildFail(ChildStep::kMountProc, errno, i);
    }
  }
  for (const char* path : kReadOnlyDirs) {
    ++i;
    if (!Exists(path)) continue;
    if (mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
        mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kPseudoFsFlags, nullptr) !=
            0) {
      return ChildFail(ChildStep::kMountProc, errno, i);
    }
  }
  return ChildOk();
}

ChildError MountSys() {
  if (int err = MakeMountPoint("/sys", 0555); err != 0) return ChildFail(ChildStep::kMountSys, err);
  if (mount("sysfs", "/sys", "sysfs", kPseudoFsFlags | MS_RDONLY, nullptr) != 0) {
    return ChildFail(ChildStep::kMountSys, errno);
  }
  return ChildOk();
}

}  // namespace skiff::gen1
