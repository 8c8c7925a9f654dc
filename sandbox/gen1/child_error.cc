#include "sandbox/gen1/child_error.h"

#include <unistd.h>

#include <cerrno>

namespace skiff::gen1 {

const char* ChildStepName(ChildStep step) {
  switch (step) {
    case ChildStep::kNone:
      return "none";
    case ChildStep::kWaitRelease:
      return "wait for release";
    case ChildStep::kSignalMask:
      return "sigprocmask";
    case ChildStep::kUnshareCgroup:
      return "unshare(CLONE_NEWCGROUP)";
    case ChildStep::kSetHostname:
      return "sethostname";
    case ChildStep::kMountPrivate:
      return "mount(/, MS_REC|MS_PRIVATE)";
    case ChildStep::kMountTmpfsLayer:
      return "mount(tmpfs) writable layer";
    case ChildStep::kMkdirLayer:
      return "mkdir writable layer";
    case ChildStep::kLinkLowerDir:
      return "symlink lower dir";
    case ChildStep::kMountOverlay:
      return "mount(overlay) rootfs";
    case ChildStep::kPivotRoot:
      return "pivot_root";
    case ChildStep::kDetachOldRoot:
      return "umount2(old root, MNT_DETACH)";
    case ChildStep::kMountProc:
      return "mount(proc, /proc)";
    case ChildStep::kMountDev:
      return "mount(tmpfs, /dev)";
    case ChildStep::kMountDevPts:
      return "mount(devpts, /dev/pts)";
    case ChildStep::kMountDevShm:
      return "mount(tmpfs, /dev/shm)";
    case ChildStep::kMakeDevNode:
      return "mknod /dev node";
    case ChildStep::kDevSymlink:
      return "symlink /dev link";
    case ChildStep::kMountSys:
      return "mount(sysfs, /sys, ro)";
    case ChildStep::kWriteEtcFile:
      return "write /etc file";
    case ChildStep::kConfigureNetwork:
      return "configure instance network";
    case ChildStep::kForkApp:
      return "fork app";
    case ChildStep::kStdio:
      return "dup2 stdio";
    case ChildStep::kSetRlimits:
      return "setrlimit";
    case ChildStep::kDropBoundingSet:
      return "drop capability bounding set";
    case ChildStep::kSetGroups:
      return "setgroups";
    case ChildStep::kSetGid:
      return "setgid";
    case ChildStep::kSetUid:
      return "setuid";
    case ChildStep::kCapabilities:
      return "set capabilities";
    case ChildStep::kNoNewPrivs:
      return "prctl(PR_SET_NO_NEW_PRIVS)";
    case ChildStep::kSeccomp:
      return "install seccomp policy";
    case ChildStep::kChdir:
      return "chdir";
    case ChildStep::kExecve:
      return "execve";
  }
  return "unknown step";
}

void ReportChildErrorAndExit(int fd, const ChildError& error) {
  ChildError rec = error;
  const char* p = reinterpret_cast<const char*>(&rec);
  size_t left = sizeof(rec);
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
  _exit(127);
}

}  // namespace skiff::gen1
