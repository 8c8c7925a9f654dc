#pragma once

// The real InstanceRuntime: skiff-shim processes (shim/client.h) and the host's
// cgroups (sandbox/common/cgroup.h).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/instances/runtime.h"

namespace skiff::agent {

// `shim_binary` is the skiff-shim executable. Detects the host's cgroup hierarchies.
absl::StatusOr<std::unique_ptr<InstanceRuntime>> NewShimRuntime(const std::string& shim_binary);

}  // namespace skiff::agent
