// Mount points the sandbox creates inside the image's root (after pivot_root): a path
// the image planted as a symlink or a file is replaced by a real directory, so a mount
// always lands where the sandbox means it to (the mask over /proc/kcore, the read-only
// /sys, ...), never where an image's symlink points.

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/gen1/child_steps.h"

namespace skiff::gen1 {

int MakeMountPoint(const char* path, mode_t mode) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return 0;
    // Removing it from the merged view leaves a whiteout in the writable layer; the
    // image's own layer is untouched.
    if (unlink(path) != 0) return errno;
  } else if (errno != ENOENT) {
    return errno;
  }
  if (mkdir(path, mode) != 0) return errno;
  return 0;
}

}  // namespace skiff::gen1
