#include "agent/ingress/controller_launcher.h"

#include "absl/strings/str_cat.h"

namespace skiff::ingress {

absl::Status ControllerLauncher::Create(const std::string& instance_id,
                                        const v1::InstanceSpec& spec) {
  return controller_->Create(instance_id, spec).status();
}

absl::Status ControllerLauncher::StopAndDelete(const std::string& instance_id) {
  absl::StatusOr<v1::Instance> stopped = controller_->Stop(instance_id, std::nullopt);
  if (!stopped.ok()) {
    if (absl::IsNotFound(stopped.status())) return absl::OkStatus();
    // Not exited in time (or the shim is unreachable): force it.
    return controller_->Delete(instance_id, /*force=*/true);
  }
  absl::Status deleted = controller_->Delete(instance_id, /*force=*/false);
  return absl::IsNotFound(deleted) ? absl::OkStatus() : deleted;
}

std::vector<v1::Instance> ControllerLauncher::ListLive(const std::string& service) {
  std::vector<v1::Instance> out;
  absl::StatusOr<std::vector<v1::Instance>> all =
      controller_->List(absl::StrCat(kServiceLabel, "=", service));
  if (!all.ok()) return out;
  for (v1::Instance& inst : *all) {
    if (inst.state() != v1::EXITED) out.push_back(std::move(inst));
  }
  return out;
}

}  // namespace skiff::ingress
