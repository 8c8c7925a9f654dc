#pragma once

// The steps the sandbox's children run between clone() and execve(), one concern per
// file (rootfs.cc, dev.cc, kernel_fs.cc, etc_files.cc, child_net.cc, process.cc).
// Every step is async-signal-safe: no allocation, no locks, no logging. Each returns
// ChildOk() or the failing sub-step with its errno.

#include "sandbox/gen1/child_context.h"
#include "sandbox/gen1/child_error.h"

namespace skiff::gen1 {

// rootfs.cc: private propagation, tmpfs writable layer at ctx.layer_dir, overlay of the
// lower dirs, pivot_root into it, old root detached. Afterwards "/" is the instance's.
ChildError MountRootfs(const ChildContext& ctx);

// kernel_fs.cc: a fresh procfs at /proc (sensitive files masked, /proc/sys and friends
// read-only) and a fresh read-only sysfs at /sys.
ChildError MountProc();
ChildError MountSys();

// dev.cc: a minimal /dev on tmpfs: null zero full random urandom tty, /dev/pts
// (newinstance), /dev/shm, the fd/stdin/stdout/stderr/ptmx links.
ChildError MountDev();
// For error messages: the path of the i-th node / link MountDev creates.
const char* DevNodePath(int index);
const char* DevLinkPath(int index);

// etc_files.cc: replaces /etc/hosts, /etc/hostname, /etc/resolv.conf in the writable
// layer with the prepared contents.
ChildError WriteEtcFiles(const ChildContext& ctx);

// child_net.cc: lo up; eth0 addressed and up with its default route when there is a veth.
ChildError ConfigureNetwork(const ChildContext& ctx);

// process.cc: in the app process (PID 2): stdio, rlimits, user and groups,
// capabilities, no_new_privs, seccomp, working dir, execve. Reports the failing step on
// ctx.error_fd and _exits if any fails.
[[noreturn]] void ExecApp(const ChildContext& ctx);

// mount_point.cc: makes `path` a real directory (an image's symlink or file there is
// removed first). Returns 0 or an errno.
int MakeMountPoint(const char* path, mode_t mode);

// Closes every fd except the `count` listed in `keep` (close_range over the gaps).
void CloseFdsExcept(const int* keep, int count);

}  // namespace skiff::gen1
