#pragma once

// The documented defaults of an InstanceSpec (proto/skiff/v1/agent.proto), applied
// once on CreateInstance so that the stored spec says what the instance runs with.

#include <cstdint>

#include "skiff/v1/agent.pb.h"

namespace skiff::agent {

inline constexpr uint32_t kDefaultPort = 8080;
inline constexpr uint32_t kDefaultVcpusMilli = 1000;
inline constexpr int64_t kDefaultGraceSeconds = 10;
inline constexpr int64_t kDefaultStartupTimeoutSeconds = 240;
inline constexpr uint32_t kDefaultConcurrency = 80;
inline constexpr int64_t kDefaultRequestTimeoutSeconds = 300;

// Fills every unset field that has a default; explicit values are kept as given.
// Enums: GENERATION_UNSPECIFIED → GEN1, KIND_UNSPECIFIED → SERVICE,
// CPU_ALLOCATION_UNSPECIFIED → REQUEST.
void ApplySpecDefaults(v1::InstanceSpec* spec);

}  // namespace skiff::agent
