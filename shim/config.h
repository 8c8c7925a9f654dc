#pragma once

// ShimConfig (hostile: written by skiffd, but validated again here) → gen1 SandboxSpec or
// gen2 Gen2SandboxSpec.

#include "absl/status/statusor.h"
#include "sandbox/gen1/spec.h"
#include "sandbox/gen2/instance/gen2_sandbox.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::shim {

// InvalidArgument naming the field.
absl::Status ValidateShimConfig(const v1::shim::ShimConfig& config);

// The app's stdout/stderr go to the given pipe write ends.
gen1::SandboxSpec ToSandboxSpec(const v1::shim::ShimConfig& config, int stdout_fd, int stderr_fd);

// ShimConfig → gen2 Gen2SandboxSpec (the guest gets `host_resolv_conf` without loopback
// servers, as gen1's instances do).
gen2::Gen2SandboxSpec ToGen2SandboxSpec(const v1::shim::ShimConfig& config,
                                        const std::string& host_resolv_conf);

}  // namespace skiff::shim
