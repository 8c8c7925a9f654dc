#include "sandbox/gen2/guest/init/init.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/init/app.h"
#include "sandbox/gen2/guest/init/control_channel.h"
#include "sandbox/gen2/guest/init/kernel_fs.h"
#include "sandbox/gen2/guest/init/modules.h"
#include "sandbox/gen2/guest/init/network.h"
#include "sandbox/gen2/guest/init/root_fs.h"
#include "sandbox/gen2/guest/init/supervisor.h"

namespace skiff::gen2::init {

namespace {

using control::InitStep;

class Init {
 public:
  explicit Init(const Options& options) : options_(options) {}

  int Run() {
    const bool vm = !options_.test_mode;
    // Every signal is blocked and read from a signalfd: a PID 1 gets only the signals it
    // handles, and queued ones wait here instead of interrupting the steps.
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    if (!vm) prctl(PR_SET_CHILD_SUBREAPER, 1);  // test mode: orphans come back to us

    if (vm && !Step(InitStep::kMountKernelFs, MountKernelFs())) return End(1);
    if (vm && !Step(InitStep::kLoadModules, LoadModules(options_.modules_list))) return End(1);
    if (!Step(InitStep::kOpenControl, control_.Open(options_))) return End(1);
    if (!Step(InitStep::kHello, control_.Send(control::Hello{}))) return End(1);
    if (!Step(InitStep::kReceiveSpec, ReceiveSpec())) return End(1);
    if (vm && !Step(InitStep::kMountRoot, MountRoot(spec_))) return End(1);
    if (vm && !Step(InitStep::kMoveKernelFs, MoveKernelFs(kNewRoot))) return End(1);
    if (vm && !Step(InitStep::kWriteFiles, WriteFiles(kNewRoot, spec_.files))) return End(1);
    if (vm && !Step(InitStep::kHostname, SetHostname())) return End(1);
    if ((vm || options_.test_network) && !Step(InitStep::kNetwork, ConfigureNetwork(spec_.network)))
      return End(1);
    if (vm && !Step(InitStep::kSwitchRoot, SwitchRoot(kNewRoot))) return End(1);
    if (!Step(InitStep::kSupervise, OpenSignalFd(all))) return End(1);
    if (!Step(InitStep::kStartApp, StartApp(spec_, &app_))) return End(1);
    if (!Step(InitStep::kStartApp, control_.Send(control::Started{app_.pid}))) return End(1);

    SuperviseOutcome outcome = Supervise(control_, app_, signal_fd_.get(),
                                         vm ? KillScope::kAllProcesses : KillScope::kAppSession);
    if (outcome.host_failed) {
      Step(outcome.step, outcome.failure);
      return End(1);
    }
    control::Exited exited;
    if (WIFSIGNALED(outcome.wait_status)) {
      exited.signaled = true;
      exited.value = WTERMSIG(outcome.wait_status);
    } else {
      exited.value = WEXITSTATUS(outcome.wait_status);
    }
    Step(InitStep::kSupervise, control_.Send(exited));
    return End(0);
  }

 private:
  // Reports a failed step on the console (skiff-init's stderr) and, once the channel is
  // open, to the host. True if the step succeeded.
  bool Step(InitStep step, const StepResult& result) {
    if (result.ok()) return true;
    const char* name = strerrorname_np(result.err);
    std::fprintf(stderr, "skiff-init: step=%s errno=%s detail=\"%s\"\n",
                 control::InitStepName(step), name ? name : "E?", result.detail.c_str());
    if (control_.is_open()) {
      control::Error error;
      error.step = step;
      error.err = result.err > 0 && result.err <= 4095 ? result.err : EIO;
      // Printable ASCII, at most kMaxErrorDetail bytes, as the protocol requires.
      for (char c : result.detail) {
        if (error.detail.size() == 256) break;
        error.detail.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
      }
      control_.Send(error);  // best effort: the VM ends either way
    }
    return false;
  }

  StepResult ReceiveSpec() {
    control::Message message;
    if (StepResult r = control_.Receive(&message); !r.ok()) return r;
    auto* spec = std::get_if<control::InstanceSpec>(&message);
    if (spec == nullptr) {
      return StepFail(EPROTO, "expected the spec, got message type " +
                                  std::to_string(static_cast<int>(control::TypeOf(message))));
    }
    spec_ = std::move(*spec);
    return StepOk();
  }

  StepResult SetHostname() {
    if (sethostname(spec_.hostname.data(), spec_.hostname.size()) != 0) {
      return StepFail(errno, "sethostname(" + spec_.hostname + ")");
    }
    return StepOk();
  }

  StepResult OpenSignalFd(const sigset_t& all) {
    signal_fd_ = UniqueFd(signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd_) return StepFail(errno, "signalfd");
    return StepOk();
  }

  // Ends the VM: sync, then reboot(RB_AUTOBOOT). The VMM boots the kernel with
  // `reboot=k panic=-1`: the reboot goes through the keyboard controller (0xfe to port
  // 0x64), which the VMM's i8042 turns into the end of the VM; should anything fail
  // before, PID 1 exiting panics the kernel and panic=-1 reboots the same way.
  int End(int code) {
    sync();
    if (options_.test_mode) return code;
    reboot(RB_AUTOBOOT);
    while (true) pause();
  }

  const Options& options_;
  ControlChannel control_;
  control::InstanceSpec spec_;
  UniqueFd signal_fd_;
  AppProcess app_;
};

}  // namespace

int RunInit(const Options& options) { return Init(options).Run(); }

}  // namespace skiff::gen2::init
