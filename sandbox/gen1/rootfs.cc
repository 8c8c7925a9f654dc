// The instance's root filesystem: overlay of the image's read-only layers under a
// writable tmpfs layer (sized to the memory limit, so written bytes are charged to the
// instance's memory cgroup), then pivot_root. Runs in the init, inside the new mount
// namespace: nothing here is visible to the host.

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/gen1/child_steps.h"

namespace skiff::gen1 {

namespace {

int MakeDir(const char* path, mode_t mode) {
  if (mkdir(path, mode) == 0 || errno == EEXIST) return 0;
  return errno;
}

}  // namespace

ChildError MountRootfs(const ChildContext& ctx) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ChildFail(ChildStep::kMountPrivate, errno);
  }
  if (mount("tmpfs", ctx.layer_dir, "tmpfs", MS_NOSUID | MS_NODEV, ctx.tmpfs_data) != 0) {
    return ChildFail(ChildStep::kMountTmpfsLayer, errno);
  }
  const char* dirs[] = {ctx.upper_dir, ctx.work_dir, ctx.merged_dir};
  for (int i = 0; i < 3; ++i) {
    if (int err = MakeDir(dirs[i], 0755); err != 0)
      return ChildFail(ChildStep::kMkdirLayer, err, i);
  }
  for (size_t i = 0; i < ctx.lower_count; ++i) {
    if (symlink(ctx.lower_dirs[i], ctx.lower_links[i]) != 0) {
      return ChildFail(ChildStep::kLinkLowerDir, errno, static_cast<int>(i));
    }
  }
  if (chdir(ctx.layer_dir) != 0) return ChildFail(ChildStep::kMountOverlay, errno);
  if (mount("overlay", ctx.merged_dir, "overlay", MS_NODEV, ctx.overlay_data) != 0) {
    return ChildFail(ChildStep::kMountOverlay, errno);
  }
  // pivot_root(".", "."): the old root ends up stacked on "/", then detached.
  if (chdir(ctx.merged_dir) != 0) return ChildFail(ChildStep::kPivotRoot, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return ChildFail(ChildStep::kPivotRoot, errno);
  if (umount2(".", MNT_DETACH) != 0) return ChildFail(ChildStep::kDetachOldRoot, errno);
  if (chdir("/") != 0) return ChildFail(ChildStep::kPivotRoot, errno);
  return ChildOk();
}

}  // namespace skiff::gen1
