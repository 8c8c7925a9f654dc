#include "sandbox/gen2/guest/control/host_channel.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/guest/control/validate.h"

namespace skiff::gen2::control {

absl::StatusOr<std::string> EncodeForGuest(const Message& message) {
  if (std::string invalid = ValidateMessage(message); !invalid.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("control message: ", invalid));
  }
  std::string frame = EncodeFrame(message);
  if (frame.size() - 4 > kMaxFrameLength) {
    return absl::InvalidArgumentError(absl::StrCat("control message: frame of ", frame.size(),
                                                   " bytes exceeds the protocol's limit"));
  }
  return frame;
}

absl::Status WriteMessage(int fd, const Message& message) {
  SKIFF_ASSIGN_OR_RETURN(std::string frame, EncodeForGuest(message));
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = write(fd, frame.data() + done, frame.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write(control fd ", fd, ")");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Message>> ReadMessage(int fd, FrameReader& reader,
                                                   absl::Duration timeout) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  while (true) {
    Message message;
    std::string error;
    switch (reader.Next(&message, &error)) {
      case DecodeStatus::kMessage:
        return std::optional<Message>(std::move(message));
      case DecodeStatus::kError:
        return absl::InvalidArgumentError(absl::StrCat("control frame: ", error));
      case DecodeStatus::kNeedMore:
        break;
    }
    int wait_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(absl::StrCat(
            "control fd ", fd, ": no complete message within ", absl::FormatDuration(timeout)));
      }
      wait_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    }
    pollfd pfd = {fd, POLLIN, 0};
    int rc = poll(&pfd, 1, wait_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll(control fd ", fd, ")");
    }
    if (rc == 0) continue;  // the deadline check above reports it
    char buf[16 * 1024];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus(errno, "read(control fd ", fd, ")");
    }
    if (n == 0) {
      if (reader.buffered() == 0) return std::optional<Message>();
      return absl::DataLossError(absl::StrCat("control fd ", fd, ": closed inside a frame (",
                                              reader.buffered(), " bytes buffered)"));
    }
    reader.Append(buf, static_cast<size_t>(n));
  }
}

std::string DescribeMessage(const Message& message) {
  struct Visitor {
    std::string operator()(const InstanceSpec& s) const {
      return absl::StrCat("spec(argv[0]=", s.argv.empty() ? "" : s.argv[0],
                          ", hostname=", s.hostname, ")");
    }
    std::string operator()(const SignalRequest& s) const {
      return absl::StrCat("signal(", s.signo, ")");
    }
    std::string operator()(const Hello& h) const {
      return absl::StrCat("hello(version=", h.version, ")");
    }
    std::string operator()(const Started& s) const {
      return absl::StrCat("started(pid=", s.pid, ")");
    }
    std::string operator()(const LogChunk& l) const {
      return absl::StrCat("log(", l.stream == LogStream::kStdout ? "stdout" : "stderr", ", ",
                          l.data.size(), " bytes)");
    }
    std::string operator()(const Exited& e) const {
      return absl::StrCat("exited(", e.signaled ? "signal=" : "code=", e.value, ")");
    }
    std::string operator()(const Error& e) const {
      const char* name = strerrorname_np(e.err);
      return absl::StrCat("error(step=", InitStepName(e.step), ", errno=", name ? name : "E?", ", ",
                          e.detail, ")");
    }
  };
  return std::visit(Visitor{}, message);
}

}  // namespace skiff::gen2::control
