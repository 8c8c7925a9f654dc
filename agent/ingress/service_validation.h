#pragma once

// A Service (proto/skiff/v1/agent.proto) as PutService receives it: its documented defaults
// filled in, then checked field by field. Errors name the field, prefixed "service.":
//   service.name: "Web" must match [a-z0-9][a-z0-9-]{0,52}
//   service.template.memory_bytes: must be > 0
//   service.max_instances: 3 is below min_instances 5

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::ingress {

inline constexpr size_t kMaxServiceNameBytes = 53;  // + "-xxxxx" = 59 <= instance id's 63
inline constexpr uint32_t kDefaultMaxInstances = 10;
inline constexpr uint32_t kMaxMaxInstances = 1000;
inline constexpr absl::Duration kDefaultIdleTimeout = absl::Seconds(60);
inline constexpr absl::Duration kMinIdleTimeout = absl::Seconds(1);
inline constexpr absl::Duration kMaxIdleTimeout = absl::Hours(24);
inline constexpr uint32_t kDefaultMaxQueue = 100;
inline constexpr uint32_t kMaxMaxQueue = 100000;
inline constexpr absl::Duration kDefaultQueueTimeout = absl::Seconds(30);
inline constexpr absl::Duration kMinQueueTimeout = absl::Milliseconds(1);

// [a-z0-9][a-z0-9-]{0,52}; InvalidArgument naming service.name otherwise.
absl::Status ValidateServiceName(const std::string& name);

// Fills the defaults (the template's too, via ApplySpecDefaults; labels get
// skiff.service=<name>) and validates. Returns the service as it is stored and run.
absl::StatusOr<v1::Service> NormalizeService(v1::Service service);

absl::Duration FromProto(const google::protobuf::Duration& d);
google::protobuf::Duration ToProto(absl::Duration d);

}  // namespace skiff::ingress
