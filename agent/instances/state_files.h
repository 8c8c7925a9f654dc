#pragma once

// Files in an instance's state dir that the agent owns, next to the shim's
// (shim/client.h):
//   instance.pb   skiff.v1.Instance as created (id, spec with defaults, digest, ip,
//                 created_at); read back on recovery, together with config.pb
// and the helpers to write, read and remove them safely.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace skiff::agent {

inline constexpr char kInstanceFile[] = "instance.pb";
inline constexpr char kConfigFile[] = "config.pb";
inline constexpr char kConsoleLog[] = "console.log";

// Writes `message` to `path` atomically (temp file, fsync, rename), mode 0600.
absl::Status WriteProtoFile(const std::string& path, const google::protobuf::MessageLite& message);
// Reads and parses `path` (at most 16 MiB); errors name the path.
absl::Status ReadProtoFile(const std::string& path, google::protobuf::MessageLite* message);

// Removes `dir` and everything below it without following symlinks or crossing into
// another filesystem: a mount left below it is an error (FailedPrecondition naming it),
// never a reason to delete what the mount shows. NotFound is OK.
absl::Status RemoveStateDir(const std::string& dir);

}  // namespace skiff::agent
