#include "shim/packet.h"

#include <sys/socket.h>

#include <cerrno>
#include <vector>

#include "sandbox/common/status.h"

namespace skiff::shim {

absl::Status SendPacket(int fd, const google::protobuf::MessageLite& msg, int flags) {
  std::string bytes;
  if (!msg.SerializeToString(&bytes)) return absl::InternalError("serialize packet");
  if (bytes.size() > kMaxPacketBytes) return absl::InternalError("packet too large");
  ssize_t n;
  do {
    n = send(fd, bytes.data(), bytes.size(), flags | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EPIPE || errno == ECONNRESET) return absl::UnavailableError("send: peer gone");
    return ErrnoStatus(errno, "send(control packet)");
  }
  return absl::OkStatus();
}

absl::Status RecvPacket(int fd, google::protobuf::MessageLite& msg) {
  std::vector<char> buf(kMaxPacketBytes + 1);
  ssize_t n;
  do {
    n = recv(fd, buf.data(), buf.size(), MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::DeadlineExceededError("recv(control packet): timed out");
    }
    if (errno == ECONNRESET) return absl::UnavailableError("recv: peer gone");
    return ErrnoStatus(errno, "recv(control packet)");
  }
  if (n == 0) return absl::UnavailableError("recv: peer closed the connection");
  if (static_cast<size_t>(n) > kMaxPacketBytes) {
    return absl::DataLossError("recv: packet larger than 64 KiB");
  }
  if (!msg.ParseFromArray(buf.data(), static_cast<int>(n))) {
    return absl::DataLossError("recv: unparsable packet");
  }
  return absl::OkStatus();
}

}  // namespace skiff::shim
