#include "sandbox/gen2/guest/init/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/gen2/guest/control/validate.h"

namespace skiff::gen2::init {

namespace {

// After the app exits, what is left is killed and its pipes are read to the end; a writer
// that escaped the kill (test mode: a process that left the app's session) cannot hold
// the exit report longer than this.
constexpr int kDrainTimeoutMs = 2000;

class Loop {
 public:
  Loop(ControlChannel& control, AppProcess& app, int signal_fd, KillScope scope)
      : control_(control), app_(app), signal_fd_(signal_fd), scope_(scope) {}

  SuperviseOutcome Run() {
    while (!Done()) {
      pollfd fds[4];
      int n = 0;
      fds[n++] = {signal_fd_, POLLIN, 0};
      int control_index = -1, out_index = -1, err_index = -1;
      if (!control_eof_) {
        control_index = n;
        fds[n++] = {control_.fd(), POLLIN, 0};
      }
      if (app_.stdout_read) {
        out_index = n;
        fds[n++] = {app_.stdout_read.get(), POLLIN, 0};
      }
      if (app_.stderr_read) {
        err_index = n;
        fds[n++] = {app_.stderr_read.get(), POLLIN, 0};
      }
      int rc = poll(fds, n, app_exited_ ? kDrainTimeoutMs : -1);
      if (rc < 0) {
        if (errno == EINTR) continue;
        return Broken(control::InitStep::kSupervise, StepFail(errno, "poll"));
      }
      if (rc == 0) break;  // drain timed out
      if (fds[0].revents != 0) OnSignals();
      if (control_index >= 0 && fds[control_index].revents != 0) {
        if (!OnControl()) return outcome_;
      }
      if (out_index >= 0 && fds[out_index].revents != 0) {
        if (!OnOutput(app_.stdout_read, control::LogStream::kStdout)) return outcome_;
      }
      if (err_index >= 0 && fds[err_index].revents != 0) {
        if (!OnOutput(app_.stderr_read, control::LogStream::kStderr)) return outcome_;
      }
    }
    Reap();
    outcome_.wait_status = wait_status_;
    return outcome_;
  }

 private:
  bool Done() const { return app_exited_ && !app_.stdout_read && !app_.stderr_read; }

  SuperviseOutcome Broken(control::InitStep step, StepResult failure) {
    outcome_.host_failed = true;
    outcome_.step = step;
    outcome_.failure = std::move(failure);
    KillEverything();
    return outcome_;
  }

  void KillEverything() {
    if (scope_ == KillScope::kAllProcesses) {
      kill(-1, SIGKILL);  // as PID 1: every process but this one
    } else if (app_.pid > 0) {
      kill(-app_.pid, SIGKILL);  // the app's session is its process group
      if (!app_exited_) kill(app_.pid, SIGKILL);
    }
  }

  void Forward(int signo) {
    if (signo == SIGKILL) {
      KillEverything();
    } else if (!app_exited_) {
      kill(app_.pid, signo);
    }
  }

  void Reap() {
    while (true) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      if (pid == app_.pid && !app_exited_) {
        app_exited_ = true;
        wait_status_ = status;
        // Like the end of a PID namespace: the app's leftovers die with it.
        KillEverything();
      }
    }
  }

  void OnSignals() {
    signalfd_siginfo info;
    while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGCHLD) continue;
      if (control::IsForwardableSignal(static_cast<int32_t>(info.ssi_signo))) {
        Forward(static_cast<int>(info.ssi_signo));
      }
    }
    Reap();
  }

  bool OnControl() {
    bool eof = false;
    if (StepResult r = control_.ReadSome(&eof); !r.ok()) {
      Broken(control::InitStep::kControl, std::move(r));
      return false;
    }
    while (true) {
      control::Message message;
      std::string error;
      control::DecodeStatus status = control_.Next(&message, &error);
      if (status == control::DecodeStatus::kNeedMore) break;
      if (status == control::DecodeStatus::kError) {
        Broken(control::InitStep::kControl, StepFail(EPROTO, "control frame: " + error));
        return false;
      }
      if (const auto* signal = std::get_if<control::SignalRequest>(&message)) {
        Forward(signal->signo);
        continue;
      }
      Broken(control::InitStep::kControl,
             StepFail(EPROTO, "control: unexpected message type " +
                                  std::to_string(static_cast<int>(control::TypeOf(message)))));
      return false;
    }
    if (eof) {
      // The host is gone: nobody is left to report to or to stop the app.
      control_eof_ = true;
      Broken(control::InitStep::kControl,
             StepFail(ECONNRESET, "control channel closed by the host"));
      return false;
    }
    return true;
  }

  bool OnOutput(UniqueFd& pipe, control::LogStream stream) {
    control::LogChunk chunk;
    chunk.stream = stream;
    chunk.data.resize(control::kMaxLogChunk);
    ssize_t n;
    do {
      n = read(pipe.get(), chunk.data.data(), chunk.data.size());
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      pipe.Reset();  // EOF (or an error): every writer is gone
      return true;
    }
    chunk.data.resize(static_cast<size_t>(n));
    if (StepResult r = control_.Send(chunk); !r.ok()) {
      Broken(control::InitStep::kControl, std::move(r));
      return false;
    }
    return true;
  }

  ControlChannel& control_;
  AppProcess& app_;
  int signal_fd_;
  KillScope scope_;
  bool app_exited_ = false;
  bool control_eof_ = false;
  int wait_status_ = 0;
  SuperviseOutcome outcome_;
};

}  // namespace

SuperviseOutcome Supervise(ControlChannel& control, AppProcess& app, int signal_fd,
                           KillScope scope) {
  return Loop(control, app, signal_fd, scope).Run();
}

}  // namespace skiff::gen2::init
