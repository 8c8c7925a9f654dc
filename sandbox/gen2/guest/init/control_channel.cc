#include "sandbox/gen2/guest/init/control_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

namespace skiff::gen2::init {

namespace {

// A tty in raw mode passes every byte through unchanged: no echo, no line discipline,
// no CR/LF translation, no signal characters.
StepResult MakeRaw(int fd, const std::string& path) {
  termios t;
  if (tcgetattr(fd, &t) != 0) return StepFail(errno, "tcgetattr(" + path + ")");
  cfmakeraw(&t);
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(fd, TCSANOW, &t) != 0) return StepFail(errno, "tcsetattr(" + path + ")");
  return StepOk();
}

}  // namespace

StepResult ControlChannel::Open(const Options& options) {
  if (options.control_fd >= 0) {
    // Only a close-on-exec copy stays open: the app must not inherit the channel.
    UniqueFd inherited(options.control_fd);
    fd_ = UniqueFd(fcntl(inherited.get(), F_DUPFD_CLOEXEC, 3));
    if (!fd_) {
      return StepFail(errno, "fcntl(F_DUPFD_CLOEXEC, " + std::to_string(options.control_fd) + ")");
    }
    return StepOk();
  }
  if (options.control_is_socket) {
    UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return StepFail(errno, "socket(AF_UNIX)");
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (options.control_path.size() >= sizeof(addr.sun_path)) {
      return StepFail(ENAMETOOLONG, "connect(" + options.control_path + ")");
    }
    std::memcpy(addr.sun_path, options.control_path.c_str(), options.control_path.size() + 1);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return StepFail(errno, "connect(" + options.control_path + ")");
    }
    fd_ = std::move(s);
    return StepOk();
  }
  UniqueFd tty(open(options.control_path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!tty) return StepFail(errno, "open(" + options.control_path + ")");
  if (StepResult r = MakeRaw(tty.get(), options.control_path); !r.ok()) return r;
  fd_ = std::move(tty);
  return StepOk();
}

StepResult ControlChannel::Send(const control::Message& message) {
  std::string frame = control::EncodeFrame(message);
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = write(fd_.get(), frame.data() + done, frame.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return StepFail(errno, "write(control)");
    }
    done += static_cast<size_t>(n);
  }
  return StepOk();
}

StepResult ControlChannel::ReadSome(bool* eof) {
  char buf[16 * 1024];
  while (true) {
    ssize_t n = read(fd_.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return StepFail(errno, "read(control)");
    }
    *eof = n == 0;
    reader_.Append(buf, static_cast<size_t>(n));
    return StepOk();
  }
}

StepResult ControlChannel::Receive(control::Message* out) {
  while (true) {
    std::string error;
    switch (reader_.Next(out, &error)) {
      case control::DecodeStatus::kMessage:
        return StepOk();
      case control::DecodeStatus::kError:
        return StepFail(EPROTO, "control frame: " + error);
      case control::DecodeStatus::kNeedMore:
        break;
    }
    bool eof = false;
    if (StepResult r = ReadSome(&eof); !r.ok()) return r;
    if (eof) return StepFail(ECONNRESET, "control channel closed by the host");
  }
}

}  // namespace skiff::gen2::init
