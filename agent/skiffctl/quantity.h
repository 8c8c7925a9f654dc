#pragma once

// Command-line quantities: memory ("256Mi", "1Gi", "512M", "1048576"), CPU ("500m",
// "1", "1.5") and durations ("10s", "500ms", "2m", "1h30m", "0").

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace skiff::skiffctl {

// Bytes. Suffixes Ki Mi Gi Ti (1024) and k K M G T (1000). InvalidArgument names `flag`.
absl::StatusOr<uint64_t> ParseMemory(const std::string& flag, const std::string& text);
// Milli-vCPUs: "500m" = 500, "2" = 2000, "0.25" = 250.
absl::StatusOr<uint32_t> ParseCpu(const std::string& flag, const std::string& text);
// Non-negative duration; a bare "0" is zero.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag, const std::string& text);
// "1.5 GiB" style, for tables.
std::string HumanBytes(uint64_t bytes);

}  // namespace skiff::skiffctl
