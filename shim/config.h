#pragma once

// ShimConfig (hostile: written by skiffd, but validated again here) → gen1 SandboxSpec.

#include "absl/status/statusor.h"
#include "sandbox/gen1/spec.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::shim {

// InvalidArgument naming the field; Unimplemented for generation 2.
absl::Status ValidateShimConfig(const v1::shim::ShimConfig& config);

// The app's stdout/stderr go to the given pipe write ends.
gen1::SandboxSpec ToSandboxSpec(const v1::shim::ShimConfig& config, int stdout_fd, int stderr_fd);

}  // namespace skiff::shim
