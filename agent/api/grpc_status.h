#pragma once

// absl::Status → grpc::Status, done once at the RPC boundary (same code, same message).

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace skiff::agent {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace skiff::agent
