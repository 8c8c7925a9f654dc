// A minimal /dev on its own tmpfs (the image's /dev is never trusted): the usual
// character devices (mknod, we are real root in the host user namespace), a private
// devpts instance, /dev/shm, and the conventional symlinks.

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/gen1/child_steps.h"

namespace skiff::gen1 {

namespace {

constexpr DevNode kDevNodes[] = {
    {"/dev/null", S_IFCHR | 0666, 1, 3},    {"/dev/zero", S_IFCHR | 0666, 1, 5},
    {"/dev/full", S_IFCHR | 0666, 1, 7},    {"/dev/random", S_IFCHR | 0666, 1, 8},
    {"/dev/urandom", S_IFCHR | 0666, 1, 9}, {"/dev/tty", S_IFCHR | 0666, 5, 0},
};

constexpr DevLink kDevLinks[] = {
    {"/dev/fd", "/proc/self/fd"},       {"/dev/stdin", "/proc/self/fd/0"},
    {"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"},
    {"/dev/ptmx", "pts/ptmx"},
};

int MakeDir(const char* path, mode_t mode) {
  if (mkdir(path, mode) == 0 || errno == EEXIST) return 0;
  return errno;
}

}  // namespace

ChildError MountDev() {
  if (int err = MakeMountPoint("/dev", 0755); err != 0) {
    return ChildFail(ChildStep::kMountDev, err);
  }
  if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m,nr_inodes=64") !=
      0) {
    return ChildFail(ChildStep::kMountDev, errno);
  }
  int i = 0;
  for (const DevNode& node : kDevNodes) {
    if (mknod(node.path, node.mode, makedev(node.major, node.minor)) != 0 ||
        chmod(node.path, node.mode & 07777) != 0) {
      return ChildFail(ChildStep::kMakeDevNode, errno, i);
    }
    ++i;
  }
  if (int err = MakeDir("/dev/pts", 0755); err != 0) return ChildFail(ChildStep::kMountDevPts, err);
  if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620") != 0) {
    return ChildFail(ChildStep::kMountDevPts, errno);
  }
  if (int err = MakeDir("/dev/shm", 01777); err != 0)
    return ChildFail(ChildStep::kMountDevShm, err);
  if (mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m") !=
      0) {
    return ChildFail(ChildStep::kMountDevShm, errno);
  }
  i = 0;
  for (const DevLink& link : kDevLinks) {
    if (symlink(link.target, link.path) != 0) return ChildFail(ChildStep::kDevSymlink, errno, i);
    ++i;
  }
  return ChildOk();
}

const char* DevNodePath(int index) {
  constexpr int kCount = sizeof(kDevNodes) / sizeof(kDevNodes[0]);
  return index >= 0 && index < kCount ? kDevNodes[index].path : "?";
}

const char* DevLinkPath(int index) {
  constexpr int kCount = sizeof(kDevLinks) / sizeof(kDevLinks[0]);
  return index >= 0 && index < kCount ? kDevLinks[index].path : "?";
}

}  // namespace skiff::gen1
