#pragma once

// Validation of an InstanceSpec, field by field. Runs after ApplySpecDefaults, so a
// field that is still zero was explicitly bad. Every error names its field:
//   spec.memory_bytes: must be > 0
//   spec.port: 70000 out of range 1..65535

#include <cstdint>

#include "absl/status/status.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::agent {

inline constexpr uint32_t kMinVcpusMilli = 10;           // 1 ms of CPU per 100 ms period
inline constexpr uint64_t kMinMemoryBytes = 4ull << 20;  // below this nothing starts
inline constexpr uint32_t kMaxConcurrency = 1000;
inline constexpr int64_t kMaxGraceSeconds = 3600;
inline constexpr int64_t kMaxStartupTimeoutSeconds = 3600;
inline constexpr int64_t kMaxRequestTimeoutSeconds = 3600;
inline constexpr size_t kMaxEnvEntries = 1024;
inline constexpr size_t kMaxArgvEntries = 4096;
inline constexpr size_t kMaxStringBytes = 64 * 1024;
inline constexpr size_t kMaxLabels = 64;

// InvalidArgument naming the first bad field; OK otherwise. Does not look at node
// capacity (see CheckCapacity).
absl::Status ValidateSpec(const v1::InstanceSpec& spec);

// Resources a spec asks for, or a node has.
struct Resources {
  uint32_t vcpus_milli = 0;
  uint64_t memory_bytes = 0;
};

// ResourceExhausted naming spec.vcpus_milli / spec.memory_bytes when the spec asks for
// more than `free`.
absl::Status CheckCapacity(const v1::InstanceSpec& spec, const Resources& free);

// Label keys: 1..63 of [A-Za-z0-9._-/], starting alphanumeric. Used by the selector too.
bool IsValidLabelKey(const std::string& key);

}  // namespace skiff::agent
