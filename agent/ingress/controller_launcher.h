#pragma once

// The activator's InstanceLauncher over skiffd's InstanceController.

#include <string>
#include <vector>

#include "agent/ingress/activator.h"
#include "agent/instances/instance_controller.h"

namespace skiff::ingress {

class ControllerLauncher : public InstanceLauncher {
 public:
  explicit ControllerLauncher(agent::InstanceController* controller) : controller_(controller) {}

  absl::Status Create(const std::string& instance_id, const v1::InstanceSpec& spec) override;
  // Stop (the controller's drain hook runs first) with the spec's grace, then Delete.
  absl::Status StopAndDelete(const std::string& instance_id) override;
  std::vector<v1::Instance> ListLive(const std::string& service) override;

 private:
  agent::InstanceController* const controller_;
};

}  // namespace skiff::ingress
