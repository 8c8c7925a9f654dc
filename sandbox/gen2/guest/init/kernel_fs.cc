#include "sandbox/gen2/guest/init/kernel_fs.h"

#include <sys/mount.h>
#include <sys/stat.h>

namespace skiff::gen2::init {

namespace {

struct KernelMount {
  const char* source;
  const char* target;
  const char* fstype;
  unsigned long flags;
  const char* data;
};

constexpr KernelMount kKernelMounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
    {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
};

// The top-level kernel mounts; /dev's submounts move with it.
constexpr const char* kMovedMounts[] = {"/dev", "/proc", "/sys", "/run"};

StepResult MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return StepFail(errno, "mkdir(" + path + ")");
  }
  return StepOk();
}

}  // namespace

StepResult MountKernelFs() {
  for (const KernelMount& m : kKernelMounts) {
    if (StepResult r = MakeDir(m.target, 0755); !r.ok()) return r;
    if (mount(m.source, m.target, m.fstype, m.flags, m.data) != 0) {
      return StepFail(errno, std::string("mount(") + m.fstype + ", " + m.target + ")");
    }
  }
  return StepOk();
}

StepResult MoveKernelFs(const std::string& new_root) {
  for (const char* path : kMovedMounts) {
    std::string target = new_root + path;
    if (StepResult r = MakeDir(target, 0755); !r.ok()) return r;
    if (mount(path, target.c_str(), nullptr, MS_MOVE, nullptr) != 0) {
      return StepFail(errno, std::string("mount(MS_MOVE, ") + path + ", " + target + ")");
    }
  }
  return StepOk();
}

}  // namespace skiff::gen2::init
