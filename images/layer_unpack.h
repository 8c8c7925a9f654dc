#pragma once

// Unpacks one layer blob (gzip, zstd or uncompressed tar, detected from its bytes) into a
// directory in overlayfs form:
//   .wh.<name>      → a 0:0 character device <name> (overlayfs whiteout)
//   .wh..wh..opq    → xattr trusted.overlay.opaque=y on the containing directory
// Entries that would escape the layer directory are refused: absolute paths, `..`
// components, any path whose parent resolves through a symlink (or a non-directory), and
// hardlinks whose target does so. Modes (setuid/setgid/sticky included), owners,
// symlinks, hardlinks, device nodes, fifos, mtimes of non-directories and user.* /
// security.capability xattrs are preserved; other xattrs (trusted.*, security.selinux)
// from the archive are dropped. Errors name the layer digest and the entry path.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace skiff::images {

// Bounds against decompression bombs: exceeding one is ResourceExhausted.
struct UnpackLimits {
  uint64_t max_bytes = uint64_t{64} << 30;  // sum of regular file sizes
  uint64_t max_entries = 4 << 20;
};

// Unpacks into the existing empty directory `dest`.
absl::Status UnpackLayerInto(const std::string& blob_path, const std::string& layer_digest,
                             const std::string& dest, const UnpackLimits& limits = {});

// Unpacks into <layers_dir>/<hex>.tmp-<pid>-<n> and renames it to <layers_dir>/<hex>
// (hex of `layer_digest`). If <layers_dir>/<hex> already exists it is returned as is.
// Returns the final directory.
absl::StatusOr<std::string> UnpackLayer(const std::string& blob_path,
                                        const std::string& layer_digest,
                                        const std::string& layers_dir,
                                        const UnpackLimits& limits = {});

}  // namespace skiff::images
