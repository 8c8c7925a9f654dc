#pragma once

// Instance ids: client-chosen or generated, [a-z0-9][a-z0-9-]{0,62}. The id names the
// state dir, the cgroup and the hostname, so it is validated before anything else.

#include <string>

#include "absl/status/status.h"

namespace skiff::agent {

// InvalidArgument naming `instance_id` unless `id` matches [a-z0-9][a-z0-9-]{0,62}.
absl::Status ValidateInstanceId(const std::string& id);

// "i-" + 12 random hex digits.
std::string GenerateInstanceId();

}  // namespace skiff::agent
