#include "shim/probe.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "sandbox/common/status.h"

namespace skiff::shim {

absl::StatusOr<ProbeAttempt> StartProbeAttempt(uint32_t ip_be, uint16_t port) {
  ProbeAttempt attempt;
  attempt.fd = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!attempt.fd) return ErrnoStatus(errno, "socket(probe)");
  sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = ip_be;
  addr.sin_port = htons(port);
  if (connect(attempt.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    attempt.done = true;
    attempt.succeeded = true;
  } else if (errno != EINPROGRESS) {
    attempt.done = true;
    attempt.fd.Reset();
  }
  return attempt;
}

bool ProbeAttemptSucceeded(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return false;
  return err == 0;
}

}  // namespace skiff::shim
