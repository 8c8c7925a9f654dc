#pragma once

// The few filesystem operations the image store needs beyond POSIX one-liners. None of
// them follows symlinks below the path they are given.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skiff::images {

// mkdir -p with mode 0700 for created directories.
absl::Status MakeDirs(const std::string& path);
// rm -rf that never follows symlinks (openat + O_NOFOLLOW walk). OK if `path` is absent.
absl::Status RemoveTree(const std::string& path);
// Removes `name` under the directory `dirfd` recursively, never following symlinks.
// `what` names it in errors. OK if absent.
absl::Status RemoveTreeAt(int dirfd, const std::string& name, const std::string& what);
// Writes `data` to a temp file next to `path`, fsyncs it, renames it over `path`, and
// fsyncs the directory.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data);
// Reads a whole file of at most `max_bytes` (InvalidArgument if larger).
absl::StatusOr<std::string> ReadFileLimited(const std::string& path, size_t max_bytes);
// fsync of a directory.
absl::Status SyncDir(const std::string& dir);

}  // namespace skiff::images
