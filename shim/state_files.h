#pragma once

// The files of an instance's state dir (see client.h), read and written whole.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace skiff::shim {

inline constexpr char kConfigFile[] = "config.pb";
inline constexpr char kStatusFile[] = "status.pb";
inline constexpr char kSocketFile[] = "shim.sock";
inline constexpr char kPidFile[] = "shim.pid";
inline constexpr char kConsoleFile[] = "console.log";
inline constexpr char kShimLogFile[] = "shim.log";

// Writes `bytes` to <path>.tmp and renames it over `path`: readers see the old or the
// new file, never a torn one.
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);
absl::Status WriteMessageAtomically(const std::string& path,
                                    const google::protobuf::MessageLite& msg);
// Reads a whole file (at most `max_bytes`).
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t max_bytes = 1 << 20);
absl::Status ReadMessage(const std::string& path, google::protobuf::MessageLite& msg);

}  // namespace skiff::shim
