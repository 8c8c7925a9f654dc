#pragma once

// The gen2 root filesystem image: an erofs image of an OCI image's unpacked layers, the
// guest's read-only root device (skiff-init puts a tmpfs overlay on top).
//
// The layer dirs are in overlayfs form (images/layer_unpack.h: whiteouts are 0:0 character
// devices, opaque dirs carry trusted.overlay.opaque), so the merged tree is exactly what
// a read-only overlay of them shows. BuildRootImage mounts that overlay in a private mount
// namespace of a child process — the mount dies with the child, it can never leak — and
// runs mkfs.erofs on it there.

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace skiff::gen2::guest {

struct RootImageSpec {
  std::vector<std::string> lower_dirs;  // absolute, topmost first (as gen1's SandboxSpec)
  std::string mkfs_erofs = "/usr/bin/mkfs.erofs";
};

// Writes the erofs image to `output` (built under a temp name in the same directory and
// renamed into place). Owners, modes, symlinks, xattrs and mtimes are kept; the image is
// uncompressed. Needs CAP_SYS_ADMIN (unshare(CLONE_NEWNS), mount).
absl::Status BuildRootImage(const RootImageSpec& spec, const std::string& output);

}  // namespace skiff::gen2::guest
