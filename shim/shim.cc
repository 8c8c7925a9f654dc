#include "shim/shim.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "sandbox/common/net.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "shim/config.h"
#include "shim/console_log.h"
#include "shim/instance_sandbox.h"
#include "shim/packet.h"
#include "shim/probe.h"
#include "shim/state_files.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::shim {

namespace {

using v1::shim::ShimConfig;
using v1::shim::ShimStatus;

// skiff.v1.ExitReason numbers (agent.proto); the shim does not link the agent proto.
enum ExitReason : int32_t {
  kCompleted = 1,
  kStopped = 2,
  kKilled = 3,
  kOomKilled = 4,
  kStartupProbeFailed = 5,
  kStartFailed = 6,
  kSignaled = 7,
};

constexpr uint64_t kDefaultStartupTimeoutMs = 240 * 1000;
// Probe schedule: tight at first (most apps listen within ~100 ms of execve, and each
// tick of delay is create→Ready latency), then backing off to the steady interval.
constexpr int64_t kProbeFastIntervalNs = 1 * 1000 * 1000;
constexpr int64_t kProbeFastPhaseNs = 100 * 1000 * 1000;
constexpr int64_t kProbeIntervalNs = 15 * 1000 * 1000;
constexpr int64_t kProbeAttemptTimeoutNs = 250 * 1000 * 1000;
constexpr int kListenBacklog = 16;
constexpr int kMaxReadsPerWakeup = 16;

// epoll tokens; clients are kClientBase + id.
enum Token : uint64_t {
  kSignalToken = 1,
  kListenToken,
  kGraceTimerToken,
  kProbeTimerToken,
  kProbeAttemptToken,
  kStdoutToken,
  kStderrToken,
  kSandboxToken,
  kClientBase = 1ull << 32,
};

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

// shim.log is the shim's stderr: one fixed-format line per decision.
template <typename... Args>
void Log(const Args&... args) {
  std::string line = absl::StrCat(FormatCriTimestamp(absl::Now()), " skiff-shim ", args..., "\n");
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

absl::StatusOr<UniqueFd> MakeTimer() {
  UniqueFd fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!fd) return ErrnoStatus(errno, "timerfd_create");
  return fd;
}

absl::Status ArmTimer(int fd, int64_t first_ns, int64_t interval_ns) {
  itimerspec spec = {};
  if (first_ns <= 0 && interval_ns == 0 && first_ns != -1) first_ns = 1;  // fire now
  if (first_ns < 0) first_ns = 0;                                         // -1: disarm
  spec.it_value.tv_sec = first_ns / 1000000000;
  spec.it_value.tv_nsec = first_ns % 1000000000;
  spec.it_interval.tv_sec = interval_ns / 1000000000;
  spec.it_interval.tv_nsec = interval_ns % 1000000000;
  if (timerfd_settime(fd, 0, &spec, nullptr) != 0) return ErrnoStatus(errno, "timerfd_settime");
  return absl::OkStatus();
}

void DrainTimer(int fd) {
  uint64_t expirations;
  while (read(fd, &expirations, sizeof(expirations)) < 0 && errno == EINTR) {
  }
}

class Shim {
 public:
  explicit Shim(std::string state_dir) : dir_(std::move(state_dir)) {}
  int Run();

 private:
  struct Client {
    UniqueFd fd;
    bool subscribed = false;
  };

  std::string Path(const char* name) const { return absl::StrCat(dir_, "/", name); }
  absl::Status Setup();
  absl::Status Listen();
  absl::Status Watch(int fd, uint64_t token, uint32_t events = EPOLLIN);
  void Unwatch(int fd);
  void StartInstance();
  void Loop();
  void OnSignal();
  void OnAccept();
  void OnClient(uint64_t id);
  void OnGraceTimer();
  void OnProbeTick();
  void OnProbeAttempt();
  void OnOutput(ConsoleStream stream, int max_reads = kMaxReadsPerWakeup);
  void RequestStop(uint64_t grace_ms);
  void MarkReady();
  void FailProbe();
  void Finish(int init_wait_status);
  void FailStart(const absl::Status& status);
  void Publish();
  void DropClient(uint64_t id);

  const std::string dir_;
  ShimConfig config_;
  ShimStatus status_;
  UniqueFd epoll_, signal_fd_, listen_fd_, grace_timer_, probe_timer_;
  UniqueFd out_[2];  // read ends of the app's stdout/stderr pipes
  std::unique_ptr<ConsoleLog> console_;
  std::unique_ptr<InstanceSandbox> sandbox_;
  std::map<uint64_t, Client> clients_;
  uint64_t next_client_id_ = 0;
  bool done_ = false;

  // Lifecycle facts that decide the exit reason.
  bool stop_requested_ = false;
  int64_t kill_deadline_ns_ = 0;  // unix ns when the grace ends (the timerfd is monotonic)
  bool killed_at_grace_ = false;
  bool probe_failed_ = false;

  // Startup probe.
  bool probing_ = false;
  uint32_t probe_ip_be_ = 0;
  int64_t probe_deadline_ns_ = 0;
  int64_t probe_started_ns_ = 0;
  int64_t probe_interval_ns_ = 0;  // current timer period
  std::optional<ProbeAttempt> attempt_;
  int64_t attempt_started_ns_ = 0;
};

absl::Status Shim::Watch(int fd, uint64_t token, uint32_t events) {
  epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = token;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(ADD, ", fd, ")");
  }
  return absl::OkStatus();
}

void Shim::Unwatch(int fd) { epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

absl::Status Shim::Listen() {
  std::string path = Path(kSocketFile);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path (", path, "): too long"));
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  listen_fd_ = UniqueFd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_fd_) return ErrnoStatus(errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink(", path, ")");
  mode_t old_umask = umask(077);
  int rc = bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  umask(old_umask);
  if (rc != 0) return ErrnoStatus(err, "bind(", path, ")");
  if (chmod(path.c_str(), 0600) != 0) return ErrnoStatus(errno, "chmod(", path, ", 0600)");
  if (listen(listen_fd_.get(), kListenBacklog) != 0)
    return ErrnoStatus(errno, "listen(", path, ")");
  return Watch(listen_fd_.get(), kListenToken);
}

bool AnotherShimServes(const std::string& socket_path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) return false;
  memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  return fd && connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

absl::Status Shim::Setup() {
  // Never take over a live shim's state dir (its socket, status, console).
  if (AnotherShimServes(Path(kSocketFile))) {
    return absl::AlreadyExistsError(
        absl::StrCat("another skiff-shim already serves ", Path(kSocketFile)));
  }
  status_.set_state(v1::shim::CREATING);
  status_.set_shim_pid(getpid());
  status_.set_created_unix_ns(NowNs());
  SKIFF_RETURN_IF_ERROR(ReadMessage(Path(kConfigFile), config_));
  SKIFF_RETURN_IF_ERROR(ValidateShimConfig(config_));
  if (config_.state_dir() != dir_) {
    return absl::InvalidArgumentError(
        absl::StrCat("state_dir (", config_.state_dir(), "): differs from --state-dir ", dir_));
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return ErrnoStatus(errno, "prctl(CHILD_SUBREAPER)");

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigset_t blocked = mask;
  sigaddset(&blocked, SIGPIPE);
  if (sigprocmask(SIG_BLOCK, &blocked, nullptr) != 0) return ErrnoStatus(errno, "sigprocmask");
  epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return ErrnoStatus(errno, "epoll_create1");
  signal_fd_ = UniqueFd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return ErrnoStatus(errno, "signalfd");
  SKIFF_RETURN_IF_ERROR(Watch(signal_fd_.get(), kSignalToken));
  SKIFF_ASSIGN_OR_RETURN(grace_timer_, MakeTimer());
  SKIFF_RETURN_IF_ERROR(Watch(grace_timer_.get(), kGraceTimerToken));
  SKIFF_ASSIGN_OR_RETURN(probe_timer_, MakeTimer());
  SKIFF_RETURN_IF_ERROR(Watch(probe_timer_.get(), kProbeTimerToken));

  SKIFF_RETURN_IF_ERROR(WriteFileAtomically(Path(kPidFile), absl::StrCat(getpid(), "\n")));
  SKIFF_RETURN_IF_ERROR(WriteMessageAtomically(Path(kStatusFile), status_));
  std::string console_path = Path(kConsoleFile);
  UniqueFd console(
      open(console_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!console) return ErrnoStatus(errno, "open(", console_path, ")");
  console_ = std::make_unique<ConsoleLog>(std::move(console));
  return Listen();
}

void Shim::StartInstance() {
  UniqueFd write_ends[2];
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return FailStart(ErrnoStatus(errno, "pipe2(app stdio)"));
    out_[i] = UniqueFd(fds[0]);
    write_ends[i] = UniqueFd(fds[1]);
    if (fcntl(out_[i].get(), F_SETFL, O_NONBLOCK) != 0) {
      return FailStart(ErrnoStatus(errno, "fcntl(O_NONBLOCK)"));
    }
  }
  if (!config_.is_job() && config_.port() > 0) {
    absl::StatusOr<uint32_t> ip = ParseIpv4(config_.instance_ip());
    if (!ip.ok()) return FailStart(Annotate(ip.status(), "instance_ip"));
    probe_ip_be_ = *ip;
  }
  absl::StatusOr<std::unique_ptr<InstanceSandbox>> sandbox = StartSandbox(
      config_, write_ends[0].get(), write_ends[1].get(), [this](int stream, std::string_view data) {
        console_->Append(stream == 2 ? ConsoleStream::kStderr : ConsoleStream::kStdout, data.data(),
                         data.size(), absl::Now());
      });
  if (!sandbox.ok()) return FailStart(sandbox.status());
  sandbox_ = std::move(*sandbox);
  write_ends[0].Reset();
  write_ends[1].Reset();
  for (int i = 0; i < 2; ++i) {
    absl::Status st = Watch(out_[i].get(), i == 0 ? kStdoutToken : kStderrToken);
    if (!st.ok()) Log("event=watch_output_failed error=\"", st.message(), "\"");
  }
  if (sandbox_->event_fd() >= 0) {
    if (absl::Status st = Watch(sandbox_->event_fd(), kSandboxToken); !st.ok()) {
      return FailStart(st);  // without its control channel a gen2 instance cannot run
    }
  }
  status_.set_state(v1::shim::RUNNING);
  status_.set_pid(sandbox_->init_pid());
  status_.set_started_unix_ns(NowNs());
  Log("event=started instance=", config_.instance_id(), " pid=", sandbox_->init_pid());
  Publish();

  if (probe_ip_be_ != 0) {
    probing_ = true;
    uint64_t timeout_ms =
        config_.startup_timeout_ms() > 0 ? config_.startup_timeout_ms() : kDefaultStartupTimeoutMs;
    probe_started_ns_ = NowNs();
    probe_deadline_ns_ = probe_started_ns_ + static_cast<int64_t>(timeout_ms) * 1000000;
    probe_interval_ns_ = kProbeFastIntervalNs;
    absl::Status st = ArmTimer(probe_timer_.get(), 1, probe_interval_ns_);
    if (!st.ok()) Log("event=probe_timer_failed error=\"", st.message(), "\"");
  }
}

void Shim::FailStart(const absl::Status& status) {
  Log("event=start_failed error=\"", status.message(), "\"");
  status_.set_state(v1::shim::EXITED);
  status_.set_exited_unix_ns(NowNs());
  status_.set_exit_code(-1);
  status_.set_exit_reason(kStartFailed);
  status_.set_exit_message(std::string(status.message()));
  Publish();
  done_ = true;
}

void Shim::Publish() {
  absl::Status st = WriteMessageAtomically(Path(kStatusFile), status_);
  if (!st.ok()) Log("event=persist_failed error=\"", st.message(), "\"");
  v1::shim::Response push;
  push.set_ok(true);
  *push.mutable_status() = status_;
  std::vector<uint64_t> gone;
  for (auto& [id, client] : clients_) {
    if (!client.subscribed) continue;
    if (!SendPacket(client.fd.get(), push, MSG_DONTWAIT).ok()) gone.push_back(id);
  }
  for (uint64_t id : gone) DropClient(id);
}

void Shim::DropClient(uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Unwatch(it->second.fd.get());
  clients_.erase(it);
}

void Shim::OnAccept() {
  while (true) {
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;  // EAGAIN (or a transient error): wait for the next event
    uint64_t id = next_client_id_++;
    if (!Watch(fd.get(), kClientBase + id).ok()) continue;
    clients_[id].fd = std::move(fd);
  }
}

void Shim::OnClient(uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Client& client = it->second;
  v1::shim::Request request;
  absl::Status st = RecvPacket(client.fd.get(), request);
  if (absl::IsDeadlineExceeded(st)) return;  // EAGAIN: spurious wake-up
  if (!st.ok()) return DropClient(id);
  v1::shim::Response response;
  response.set_ok(true);
  switch (request.kind_case()) {
    case v1::shim::Request::kGetStatus:
      break;
    case v1::shim::Request::kStop: {
      uint64_t grace =
          request.stop().has_grace() ? request.stop().grace_ms() : config_.termination_grace_ms();
      if (grace > 3600 * 1000) grace = 3600 * 1000;
      RequestStop(grace);
      break;
    }
    case v1::shim::Request::kSubscribe:
      client.subscribed = true;
      break;
    default:
      response.set_ok(false);
      response.set_error("unknown request");
  }
  *response.mutable_status() = status_;
  if (!SendPacket(client.fd.get(), response, MSG_DONTWAIT).ok()) DropClient(id);
}

void Shim::RequestStop(uint64_t grace_ms) {
  if (!sandbox_ || status_.state() == v1::shim::EXITED) return;
  int64_t deadline = NowNs() + static_cast<int64_t>(grace_ms) * 1000000;
  if (stop_requested_) {
    // Idempotent; a shorter grace brings the SIGKILL forward.
    if (deadline < kill_deadline_ns_ && !killed_at_grace_) {
      kill_deadline_ns_ = deadline;
      (void)ArmTimer(grace_timer_.get(), static_cast<int64_t>(grace_ms) * 1000000, 0);
    }
    return;
  }
  stop_requested_ = true;
  kill_deadline_ns_ = deadline;
  probing_ = false;
  attempt_.reset();
  (void)ArmTimer(probe_timer_.get(), -1, 0);
  absl::Status st = sandbox_->Signal(SIGTERM);
  Log("event=stopping grace_ms=", grace_ms, st.ok() ? "" : " sigterm_error=", st.message());
  absl::Status armed = ArmTimer(grace_timer_.get(), static_cast<int64_t>(grace_ms) * 1000000, 0);
  if (!armed.ok()) {
    Log("event=grace_timer_failed error=\"", armed.message(), "\"");
    OnGraceTimer();
  }
  status_.set_state(v1::shim::STOPPING);
  status_.set_stopping_unix_ns(NowNs());
  Publish();
}

void Shim::OnGraceTimer() {
  DrainTimer(grace_timer_.get());
  if (!sandbox_ || killed_at_grace_ || status_.state() == v1::shim::EXITED) return;
  killed_at_grace_ = true;
  absl::Status st = sandbox_->KillAll();
  Log("event=grace_expired action=sigkill", st.ok() ? "" : " error=", st.message());
}

void Shim::OnProbeTick() {
  DrainTimer(probe_timer_.get());
  if (!probing_) return;
  int64_t now = NowNs();
  if (now >= probe_deadline_ns_) return FailProbe();
  if (now - probe_started_ns_ >= kProbeFastPhaseNs && probe_interval_ns_ < kProbeIntervalNs) {
    probe_interval_ns_ = std::min(probe_interval_ns_ * 2, kProbeIntervalNs);
    (void)ArmTimer(probe_timer_.get(), probe_interval_ns_, probe_interval_ns_);
  }
  if (attempt_ && now - attempt_started_ns_ < kProbeAttemptTimeoutNs) return;
  if (attempt_) {
    if (attempt_->fd) Unwatch(attempt_->fd.get());
    attempt_.reset();
  }
  absl::StatusOr<ProbeAttempt> attempt = StartProbeAttempt(probe_ip_be_, config_.port());
  if (!attempt.ok()) return;  // e.g. EMFILE: next tick
  if (attempt->done) {
    if (attempt->succeeded) MarkReady();
    return;
  }
  if (!Watch(attempt->fd.get(), kProbeAttemptToken, EPOLLOUT).ok()) return;
  attempt_ = std::move(*attempt);
  attempt_started_ns_ = now;
}

void Shim::OnProbeAttempt() {
  if (!attempt_) return;
  bool ok = ProbeAttemptSucceeded(attempt_->fd.get());
  Unwatch(attempt_->fd.get());
  attempt_.reset();
  if (ok && probing_) MarkReady();
}

void Shim::MarkReady() {
  probing_ = false;
  (void)ArmTimer(probe_timer_.get(), -1, 0);
  if (status_.state() != v1::shim::RUNNING) return;
  status_.set_state(v1::shim::READY);
  status_.set_ready_unix_ns(NowNs());
  Log("event=ready port=", config_.port(),
      " after_ms=", (status_.ready_unix_ns() - status_.started_unix_ns()) / 1000000);
  Publish();
}

void Shim::FailProbe() {
  probing_ = false;
  probe_failed_ = true;
  attempt_.reset();
  (void)ArmTimer(probe_timer_.get(), -1, 0);
  Log("event=startup_probe_failed port=", config_.port(), " action=sigkill");
  absl::Status st = sandbox_->KillAll();
  if (!st.ok()) Log("event=kill_failed error=\"", st.message(), "\"");
}

void Shim::OnOutput(ConsoleStream stream, int max_reads) {
  int i = static_cast<int>(stream);
  if (!out_[i]) return;
  char buf[16384];
  // Bounded per wake-up (epoll is level-triggered): a chatty app must not starve the
  // grace timer or the control socket.
  for (int reads = 0; max_reads < 0 || reads < max_reads; ++reads) {
    ssize_t n = read(out_[i].get(), buf, sizeof(buf));
    if (n > 0) {
      console_->Append(stream, buf, static_cast<size_t>(n), absl::Now());
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EOF (or a read error): every writer is gone.
    console_->Flush(stream, absl::Now());
    Unwatch(out_[i].get());
    out_[i].Reset();
    return;
  }
}

void Shim::OnSignal() {
  signalfd_siginfo info;
  bool child = false;
  while (read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo == SIGCHLD) {
      child = true;
    } else if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) {
      Log("event=signal signo=", info.ssi_signo, " action=stop");
      RequestStop(config_.termination_grace_ms());
    }
  }
  if (!child) return;
  while (true) {
    int wstatus = 0;
    pid_t pid = waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0) return;
    if (sandbox_ && pid == sandbox_->init_pid()) return Finish(wstatus);
  }
}

void Shim::Finish(int init_wait_status) {
  if (sandbox_->event_fd() >= 0) Unwatch(sandbox_->event_fd());
  AppExit app = sandbox_->OnInitExited(init_wait_status);
  const std::string start_error = app.reported ? "" : sandbox_->start_error();
  absl::Status killed = sandbox_->KillAll();
  if (!killed.ok()) Log("event=kill_stragglers_failed error=\"", killed.message(), "\"");
  absl::StatusOr<bool> oom = sandbox_->OomKilled();
  absl::Status destroyed = sandbox_->Destroy();
  if (!destroyed.ok()) Log("event=release_failed error=\"", destroyed.message(), "\"");
  sandbox_.reset();
  // Every writer is dead: read to EOF.
  OnOutput(ConsoleStream::kStdout, -1);
  OnOutput(ConsoleStream::kStderr, -1);
  for (int i = 0; i < 2; ++i) {
    if (out_[i]) console_->Flush(static_cast<ConsoleStream>(i), absl::Now());
  }

  int ws = app.wait_status;
  if (WIFEXITED(ws)) {
    status_.set_exit_code(WEXITSTATUS(ws));
    status_.set_exit_signal(0);
  } else {
    status_.set_exit_code(-1);
    status_.set_exit_signal(WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
  }
  int32_t reason;
  if (!start_error.empty()) {
    reason = kStartFailed;
    status_.set_exit_message(start_error);
  } else if (oom.ok() && *oom) {
    reason = kOomKilled;
  } else if (probe_failed_) {
    reason = kStartupProbeFailed;
  } else if (killed_at_grace_) {
    reason = kKilled;
  } else if (stop_requested_) {
    reason = kStopped;
  } else if (WIFSIGNALED(ws)) {
    reason = kSignaled;
  } else {
    reason = kCompleted;
  }
  status_.set_exit_reason(reason);
  status_.set_state(v1::shim::EXITED);
  status_.set_exited_unix_ns(NowNs());
  status_.set_pid(0);
  Log("event=exited code=", status_.exit_code(), " signal=", status_.exit_signal(),
      " reason=", reason, " reported=", app.reported ? 1 : 0);
  Publish();
  done_ = true;
}

void Shim::Loop() {
  epoll_event events[16];
  while (!done_) {
    int n = epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log("event=epoll_failed errno=", errno);
      return;
    }
    for (int i = 0; i < n && !done_; ++i) {
      uint64_t token = events[i].data.u64;
      switch (token) {
        case kSignalToken:
          OnSignal();
          break;
        case kListenToken:
          OnAccept();
          break;
        case kGraceTimerToken:
          OnGraceTimer();
          break;
        case kProbeTimerToken:
          OnProbeTick();
          break;
        case kProbeAttemptToken:
          OnProbeAttempt();
          break;
        case kStdoutToken:
          OnOutput(ConsoleStream::kStdout);
          break;
        case kStderrToken:
          OnOutput(ConsoleStream::kStderr);
          break;
        case kSandboxToken:
          if (sandbox_) sandbox_->OnEvent();
          break;
        default:
          if (token >= kClientBase) OnClient(token - kClientBase);
      }
    }
  }
}

int Shim::Run() {
  absl::Status st = Setup();
  if (!st.ok()) {
    Log("event=setup_failed error=\"", st.message(), "\"");
    // status.pb (if the dir is writable) tells skiffd why, unless it is a live shim's.
    if (!absl::IsAlreadyExists(st)) FailStart(st);
    return 1;
  }
  StartInstance();
  Loop();
  // Subscribers have the EXITED status; closing tells them the shim is gone.
  clients_.clear();
  unlink(Path(kSocketFile).c_str());
  Log("event=shim_exit");
  return 0;
}

}  // namespace

int RunShim(const std::string& state_dir) {
  Shim shim(state_dir);
  return shim.Run();
}

}  // namespace skiff::shim
