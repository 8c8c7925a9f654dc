#include "shim/client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sandbox/common/status.h"
#include "shim/packet.h"
#include "shim/state_files.h"

namespace skiff::shim {

namespace {

constexpr absl::Duration kRequestTimeout = absl::Seconds(10);
constexpr size_t kLogTailBytes = 2048;
constexpr int32_t kStartFailedReason = 6;  // skiff.v1.ExitReason START_FAILED

std::string StatePath(const std::string& dir, const char* name) {
  return absl::StrCat(dir, "/", name);
}

absl::Status SetRecvTimeout(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_RCVTIMEO)");
  }
  return absl::OkStatus();
}

std::string LogTail(const std::string& dir) {
  absl::StatusOr<std::string> log = ReadWholeFile(StatePath(dir, kShimLogFile), 1 << 20);
  if (!log.ok()) return "(no shim.log)";
  std::string tail = log->size() > kLogTailBytes ? log->substr(log->size() - kLogTailBytes) : *log;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return tail;
}

// Starts `binary --state-dir dir` as a grandchild in its own session and returns its
// pid. Between fork and execve only async-signal-safe calls (skiffd is multithreaded).
absl::StatusOr<pid_t> SpawnDetached(const std::string& binary, const std::string& dir) {
  std::string log_path = StatePath(dir, kShimLogFile);
  const char* argv[] = {binary.c_str(), "--state-dir", dir.c_str(), nullptr};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd pid_read(fds[0]), pid_write(fds[1]);
  UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) return ErrnoStatus(errno, "open(/dev/null)");
  UniqueFd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return ErrnoStatus(errno, "open(", log_path, ")");

  pid_t child = fork();
  if (child < 0) return ErrnoStatus(errno, "fork");
  if (child == 0) {
    setsid();
    pid_t grandchild = fork();
    if (grandchild != 0) {
      // Tells the launcher the shim's pid (or -1), then leaves it to init.
      (void)!write(pid_write.get(), &grandchild, sizeof(grandchild));
      _exit(0);
    }
    if (dup2(dev_null.get(), 0) < 0 || dup2(log.get(), 1) < 0 || dup2(log.get(), 2) < 0) {
      _exit(126);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], const_cast<char* const*>(argv));
    static const char kMsg[] = "skiff-shim: execv of the shim binary failed\n";
    (void)!write(2, kMsg, sizeof(kMsg) - 1);
    _exit(127);
  }
  pid_write.Reset();
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t shim_pid = -1;
  ssize_t n;
  do {
    n = read(pid_read.get(), &shim_pid, sizeof(shim_pid));
  } while (n < 0 && errno == EINTR);
  if (n != sizeof(shim_pid) || shim_pid < 0) {
    return absl::InternalError(absl::StrCat("launch ", binary, ": second fork failed"));
  }
  return shim_pid;
}

}  // namespace

absl::Status LaunchShim(const std::string& shim_binary, const v1::shim::ShimConfig& config,
                        absl::Duration timeout) {
  const std::string& dir = config.state_dir();
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("state_dir (", dir, "): not an absolute path"));
  }
  if (access(shim_binary.c_str(), X_OK) != 0) {
    return ErrnoStatus(errno, "access(", shim_binary, ", X_OK)");
  }
  if (ShimClient::Connect(dir).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("state_dir (", dir, "): a skiff-shim already serves it"));
  }
  SKIFF_RETURN_IF_ERROR(WriteMessageAtomically(StatePath(dir, kConfigFile), config));
  SKIFF_ASSIGN_OR_RETURN(pid_t shim_pid, SpawnDetached(shim_binary, dir));
  // The shim was reparented away from us; a pidfd tells when it exits.
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, shim_pid, 0)));

  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    // The shim answers requests only once the sandbox start is over: an answer means
    // the instance runs; a hang-up means the shim exited (recording why).
    absl::StatusOr<std::unique_ptr<ShimClient>> client = ShimClient::Connect(dir);
    if (client.ok() && (*client)->GetStatus().ok()) return absl::OkStatus();
    bool exited = !pidfd;  // already gone before pidfd_open
    if (pidfd) {
      pollfd pfd = {pidfd.get(), POLLIN, 0};
      exited = poll(&pfd, 1, 1) == 1;  // the shim listens within ~1 ms
    }
    if (exited) {
      absl::StatusOr<v1::shim::ShimStatus> st = ReadStatusFile(dir);
      if (st.ok() && st->state() == v1::shim::EXITED && st->shim_pid() == shim_pid) {
        // A job may already have run to completion: only a start failure is an error.
        if (st->exit_reason() != kStartFailedReason) return absl::OkStatus();
        return absl::FailedPreconditionError(absl::StrCat(
            "instance ", config.instance_id(), " failed to start: ", st->exit_message()));
      }
      return absl::UnavailableError(
          absl::StrCat("skiff-shim for ", dir, " exited during start-up: ", LogTail(dir)));
    }
    if (absl::Now() > deadline) {
      if (pidfd) syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0);
      return absl::DeadlineExceededError(absl::StrCat("skiff-shim for ", dir, ": no answer after ",
                                                      absl::FormatDuration(timeout), ": ",
                                                      LogTail(dir)));
    }
  }
}

absl::StatusOr<std::unique_ptr<ShimClient>> ShimClient::Connect(const std::string& state_dir) {
  std::string path = StatePath(state_dir, kSocketFile);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path (", path, "): too long"));
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return absl::UnavailableError(absl::StrCat("no skiff-shim listening at ", path));
    }
    return ErrnoStatus(err, "connect(", path, ")");
  }
  SKIFF_RETURN_IF_ERROR(SetRecvTimeout(fd.get(), kRequestTimeout));
  return std::unique_ptr<ShimClient>(new ShimClient(std::move(fd)));
}

namespace {

absl::StatusOr<v1::shim::Response> Call(int fd, const v1::shim::Request& request) {
  SKIFF_RETURN_IF_ERROR(SendPacket(fd, request));
  v1::shim::Response response;
  SKIFF_RETURN_IF_ERROR(RecvPacket(fd, response));
  if (!response.ok()) {
    return absl::InternalError(absl::StrCat("skiff-shim: ", response.error()));
  }
  return response;
}

}  // namespace

absl::StatusOr<v1::shim::ShimStatus> ShimClient::GetStatus() {
  v1::shim::Request request;
  request.mutable_get_status();
  SKIFF_ASSIGN_OR_RETURN(v1::shim::Response response, Call(fd_.get(), request));
  return response.status();
}

absl::Status ShimClient::Stop(std::optional<absl::Duration> grace) {
  v1::shim::Request request;
  v1::shim::Stop* stop = request.mutable_stop();
  if (grace.has_value()) {
    if (*grace < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("grace: negative duration");
    }
    stop->set_has_grace(true);
    stop->set_grace_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(*grace)));
  }
  return Call(fd_.get(), request).status();
}

absl::Status ShimClient::Subscribe(
    const std::function<void(const v1::shim::ShimStatus&)>& on_status) {
  v1::shim::Request request;
  request.mutable_subscribe();
  absl::StatusOr<v1::shim::Response> first = Call(fd_.get(), request);
  if (!first.ok()) return Cancelled(first.status());
  // Pushes come whenever the instance changes state: no receive timeout.
  SKIFF_RETURN_IF_ERROR(SetRecvTimeout(fd_.get(), absl::ZeroDuration()));
  on_status(first->status());
  if (first->status().state() == v1::shim::EXITED) return absl::OkStatus();
  while (true) {
    v1::shim::Response push;
    if (absl::Status st = RecvPacket(fd_.get(), push); !st.ok()) return Cancelled(st);
    if (cancelled_.load()) return Cancelled(absl::OkStatus());
    on_status(push.status());
    if (push.status().state() == v1::shim::EXITED) return absl::OkStatus();
  }
}

void ShimClient::Cancel() {
  cancelled_.store(true);
  // Wakes a blocked recv() in another thread; the fd itself stays owned (and open)
  // until the client is destroyed, so it cannot be reused under that thread.
  shutdown(fd_.get(), SHUT_RDWR);
}

absl::Status ShimClient::Cancelled(const absl::Status& st) const {
  if (cancelled_.load()) return absl::CancelledError("shim client cancelled");
  return st;
}

absl::StatusOr<v1::shim::ShimStatus> ReadStatusFile(const std::string& state_dir) {
  v1::shim::ShimStatus status;
  SKIFF_RETURN_IF_ERROR(ReadMessage(StatePath(state_dir, kStatusFile), status));
  return status;
}

}  // namespace skiff::shim
