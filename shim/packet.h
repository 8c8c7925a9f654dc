#pragma once

// One protobuf message per SOCK_SEQPACKET packet (the shim's control protocol).

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"

namespace skiff::shim {

// Largest packet either side sends or accepts.
inline constexpr size_t kMaxPacketBytes = 64 * 1024;

// Sends `msg` as one packet. `flags` for send(2) (MSG_NOSIGNAL is always added).
absl::Status SendPacket(int fd, const google::protobuf::MessageLite& msg, int flags = 0);
// Receives one packet into `msg`. Unavailable on EOF (peer gone), DataLoss on a
// truncated or unparsable packet, DeadlineExceeded on a receive timeout.
absl::Status RecvPacket(int fd, google::protobuf::MessageLite& msg);

}  // namespace skiff::shim
