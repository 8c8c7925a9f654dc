#include "shim/instance_sandbox.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "sandbox/gen1/sandbox.h"
#include "sandbox/gen2/instance/gen2_sandbox.h"
#include "shim/config.h"

namespace skiff::shim {
namespace {

class Gen1Instance : public InstanceSandbox {
 public:
  explicit Gen1Instance(std::unique_ptr<gen1::Gen1Sandbox> sandbox)
      : sandbox_(std::move(sandbox)) {}
  pid_t init_pid() const override { return sandbox_->init_pid(); }
  absl::Status Signal(int sig) override { return sandbox_->Signal(sig); }
  absl::Status KillAll() override { return sandbox_->KillAll(); }
  AppExit OnInitExited(int wait_status) override { return sandbox_->OnInitExited(wait_status); }
  absl::StatusOr<bool> OomKilled() const override { return sandbox_->OomKilled(); }
  absl::Status Destroy() override { return sandbox_->Destroy(); }

 private:
  std::unique_ptr<gen1::Gen1Sandbox> sandbox_;
};

class Gen2Instance : public InstanceSandbox {
 public:
  explicit Gen2Instance(std::unique_ptr<gen2::Gen2Sandbox> sandbox)
      : sandbox_(std::move(sandbox)) {}
  pid_t init_pid() const override { return sandbox_->vmm_pid(); }
  absl::Status Signal(int sig) override { return sandbox_->Signal(sig); }
  absl::Status KillAll() override { return sandbox_->KillAll(); }
  AppExit OnInitExited(int wait_status) override { return sandbox_->OnVmmExited(wait_status); }
  absl::StatusOr<bool> OomKilled() const override { return sandbox_->OomKilled(); }
  absl::Status Destroy() override { return sandbox_->Destroy(); }
  int event_fd() const override { return sandbox_->event_fd(); }
  void OnEvent() override { sandbox_->OnEvent(); }
  std::string start_error() const override { return sandbox_->guest_error().value_or(""); }

 private:
  std::unique_ptr<gen2::Gen2Sandbox> sandbox_;
};

std::string ReadHostResolvConf() {
  std::ifstream in("/etc/resolv.conf");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<InstanceSandbox>> StartSandbox(const v1::shim::ShimConfig& config,
                                                              int stdout_fd, int stderr_fd,
                                                              OutputSink output) {
  if (config.generation() == 2) {
    absl::StatusOr<std::unique_ptr<gen2::Gen2Sandbox>> sandbox = gen2::Gen2Sandbox::Start(
        ToGen2SandboxSpec(config, ReadHostResolvConf()), std::move(output));
    if (!sandbox.ok()) return sandbox.status();
    return std::make_unique<Gen2Instance>(std::move(*sandbox));
  }
  absl::StatusOr<std::unique_ptr<gen1::Gen1Sandbox>> sandbox =
      gen1::Gen1Sandbox::Start(ToSandboxSpec(config, stdout_fd, stderr_fd));
  if (!sandbox.ok()) return sandbox.status();
  return std::make_unique<Gen1Instance>(std::move(*sandbox));
}

}  // namespace skiff::shim
