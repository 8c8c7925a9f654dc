#pragma once

// Whole-file reads and writes for small control files (cgroupfs, procfs, sysfs).
// Every error names the operation and the path.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skiff {

// Reads the whole file (at most `max_bytes`; larger is OutOfRange).
absl::StatusOr<std::string> ReadFileToString(const std::string& path, size_t max_bytes = 1 << 20);

// Opens `path` O_WRONLY (no O_CREAT, no O_TRUNC: control files) and writes `content`
// with a single write(), as the kernel's control files expect.
absl::Status WriteControlFile(const std::string& path, const std::string& content);

// Creates or truncates a regular file with `content` (mode 0644).
absl::Status WriteNewFile(const std::string& path, const std::string& content);

// True if `path` exists (any type). Errors other than ENOENT are returned.
absl::StatusOr<bool> PathExists(const std::string& path);

}  // namespace skiff
