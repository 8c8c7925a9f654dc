#include "shim/probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "gtest/gtest.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff::shim {
namespace {

// Binds 127.0.0.1:0; listens if `listen_too`. Returns the port.
uint16_t BindLoopback(UniqueFd& fd, bool listen_too) {
  fd = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  if (listen_too) {
    EXPECT_EQ(listen(fd.get(), 4), 0);
  }
  socklen_t len = sizeof(addr);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// Runs one attempt to completion.
bool Probe(uint16_t port) {
  absl::StatusOr<ProbeAttempt> attempt = StartProbeAttempt(htonl(INADDR_LOOPBACK), port);
  EXPECT_THAT(attempt, ::skiff::testing::IsOk());
  if (!attempt.ok()) return false;
  if (attempt->done) return attempt->succeeded;
  pollfd pfd = {attempt->fd.get(), POLLOUT, 0};
  EXPECT_EQ(poll(&pfd, 1, 2000), 1);
  return ProbeAttemptSucceeded(attempt->fd.get());
}

TEST(StartupProbeTest, SucceedsOnlyAgainstAListeningPort) {
  UniqueFd listening, bound_only;
  uint16_t open_port = BindLoopback(listening, true);
  uint16_t closed_port = BindLoopback(bound_only, false);
  EXPECT_TRUE(Probe(open_port));
  EXPECT_FALSE(Probe(closed_port));
}

}  // namespace
}  // namespace skiff::shim
