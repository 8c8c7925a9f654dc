#pragma once

// Resolves an image user ("", "uid", "uid:gid", "name", "name:group", ...) to numeric
// ids the way Docker/OCI runtimes do, reading /etc/passwd and /etc/group from the
// image's layer dirs (the topmost layer that has the file wins; a whiteout hides it).
// The files are read without following symlinks and below the layer dir only: an
// image is hostile and must not make skiffd read host files.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::agent {

struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;  // groups in /etc/group listing the user by name
};

// `field` prefixes errors (e.g. "spec.user" or "image config User").
absl::StatusOr<ResolvedUser> ResolveImageUser(const std::string& user,
                                              const std::vector<std::string>& layer_dirs,
                                              const std::string& field);

// Reads `rel_path` (e.g. "etc/passwd") from the topmost layer that has it. NotFound if no
// layer has it (or the topmost entry is a whiteout). At most 1 MiB.
absl::StatusOr<std::string> ReadLayeredFile(const std::vector<std::string>& layer_dirs,
                                            const std::string& rel_path);

}  // namespace skiff::agent
