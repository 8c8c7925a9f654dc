#include "agent/instances/shim_runtime.h"

#include "absl/strings/str_cat.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/net.h"
#include "sandbox/common/status.h"
#include "shim/client.h"

namespace skiff::agent {
namespace {

class RealShimConnection : public ShimConnection {
 public:
  explicit RealShimConnection(std::unique_ptr<shim::ShimClient> client)
      : client_(std::move(client)) {}
  absl::StatusOr<v1::shim::ShimStatus> GetStatus() override { return client_->GetStatus(); }
  absl::Status Stop(std::optional<absl::Duration> grace) override { return client_->Stop(grace); }
  absl::Status Subscribe(
      const std::function<void(const v1::shim::ShimStatus&)>& on_status) override {
    return client_->Subscribe(on_status);
  }
  // ShimClient::Cancel is thread-safe and makes a blocked Subscribe return Cancelled.
  bool Cancel() override {
    client_->Cancel();
    return true;
  }

 private:
  std::unique_ptr<shim::ShimClient> client_;
};

class ShimRuntime : public InstanceRuntime {
 public:
  ShimRuntime(std::string shim_binary, CgroupRoots roots)
      : shim_binary_(std::move(shim_binary)), roots_(std::move(roots)) {}

  absl::Status Launch(const v1::shim::ShimConfig& config) override {
    return shim::LaunchShim(shim_binary_, config);
  }
  absl::StatusOr<std::unique_ptr<ShimConnection>> Connect(const std::string& state_dir) override {
    SKIFF_ASSIGN_OR_RETURN(std::unique_ptr<shim::ShimClient> client,
                           shim::ShimClient::Connect(state_dir));
    return std::unique_ptr<ShimConnection>(new RealShimConnection(std::move(client)));
  }
  absl::StatusOr<v1::shim::ShimStatus> ReadStatusFile(const std::string& state_dir) override {
    return shim::ReadStatusFile(state_dir);
  }
  absl::StatusOr<std::unique_ptr<CpuQuota>> OpenCpuQuota(const std::string& cgroup_path) override {
    SKIFF_ASSIGN_OR_RETURN(std::unique_ptr<Cgroup> cg, Cgroup::Open(roots_, cgroup_path));
    SKIFF_ASSIGN_OR_RETURN(CpuQuota quota, cg->OpenCpuQuota());
    return std::make_unique<CpuQuota>(std::move(quota));
  }
  absl::Status DestroyCgroup(const std::string& cgroup_path) override {
    absl::StatusOr<std::unique_ptr<Cgroup>> cg = Cgroup::Open(roots_, cgroup_path);
    if (absl::IsNotFound(cg.status())) return absl::OkStatus();
    SKIFF_RETURN_IF_ERROR(cg.status());
    SKIFF_RETURN_IF_ERROR((*cg)->KillAll());
    return (*cg)->Destroy();
  }
  absl::StatusOr<bool> HostLinkExists(const std::string& name) override { return LinkExists(name); }
  std::string cgroup_version() const override {
    return roots_.version == CgroupVersion::kV2 ? "v2" : "v1";
  }

 private:
  const std::string shim_binary_;
  const CgroupRoots roots_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<InstanceRuntime>> NewShimRuntime(const std::string& shim_binary) {
  SKIFF_ASSIGN_OR_RETURN(CgroupRoots roots, CgroupRoots::Detect());
  return std::unique_ptr<InstanceRuntime>(new ShimRuntime(shim_binary, std::move(roots)));
}

}  // namespace skiff::agent
