#include "shim/instance_sandbox.h"

#include <utility>

#include "sandbox/gen1/sandbox.h"
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

}  // namespace

absl::StatusOr<std::unique_ptr<InstanceSandbox>> StartSandbox(const v1::shim::ShimConfig& config,
                                                              int stdout_fd, int stderr_fd) {
  if (config.generation() == 2) {
    return absl::UnimplementedError("generation 2 (gen2): not implemented in skiff-shim yet");
  }
  absl::StatusOr<std::unique_ptr<gen1::Gen1Sandbox>> sandbox =
      gen1::Gen1Sandbox::Start(ToSandboxSpec(config, stdout_fd, stderr_fd));
  if (!sandbox.ok()) return sandbox.status();
  return std::make_unique<Gen1Instance>(std::move(*sandbox));
}

}  // namespace skiff::shim
