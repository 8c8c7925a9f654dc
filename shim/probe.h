#pragma once

// The startup probe: a non-blocking TCP connect from the host netns to
// instance_ip:port. The shim's event loop starts one attempt per tick and watches it.

#include <cstdint>

#include "absl/status/statusor.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::shim {

struct ProbeAttempt {
  UniqueFd fd;             // watch for EPOLLOUT while !done
  bool done = false;       // finished synchronously
  bool succeeded = false;  // (when done) the port accepted the connection
};

// Starts connecting to ip_be:port (network byte order ip, host order port).
absl::StatusOr<ProbeAttempt> StartProbeAttempt(uint32_t ip_be, uint16_t port);
// After the attempt's fd became writable (or errored): did the connect succeed?
bool ProbeAttemptSucceeded(int fd);

}  // namespace skiff::shim
