#pragma once

// The host end of the control protocol, for the shim: absl::Status around the std-only
// codec, over a connected stream fd (the VMM's control socket, or a test's socketpair).

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sandbox/gen2/guest/control/codec.h"
#include "sandbox/gen2/guest/control/messages.h"

namespace skiff::gen2::control {

// The frame for `message`; InvalidArgument (naming the field) if it breaks a rule.
absl::StatusOr<std::string> EncodeForGuest(const Message& message);

// Validates, encodes and writes `message` to `fd` completely (retrying short writes).
absl::Status WriteMessage(int fd, const Message& message);

// Reads from `fd` into `reader` until it yields a message. nullopt: the peer closed the
// stream at a frame boundary. DataLoss: closed mid-frame. InvalidArgument: a malformed
// frame. DeadlineExceeded: nothing complete within `timeout` (InfiniteDuration: wait).
absl::StatusOr<std::optional<Message>> ReadMessage(int fd, FrameReader& reader,
                                                   absl::Duration timeout);

// "spec(argv[0]=/bin/hello)", "exited(code=3)", "error(step=mount_root, errno=ENOENT, ...)":
// one line for logs.
std::string DescribeMessage(const Message& message);

}  // namespace skiff::gen2::control
