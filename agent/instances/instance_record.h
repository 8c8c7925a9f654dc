#pragma once

// InstanceController's per-instance entry (private to agent/instances).

#include <memory>
#include <string>
#include <thread>

#include "agent/instances/instance_controller.h"

namespace skiff::agent {

struct InstanceController::Record {
  // Guarded by InstanceController::mu_.
  v1::Instance instance;
  std::string dir;               // <state_dir>/instances/<id>
  std::string host_ip;           // host end of its /31 pair
  std::string cgroup_path;       // relative, e.g. "skiff/<id>" (from config.pb)
  bool holds_resources = false;  // capacity, IP pair, image user
  // Request-based CPU on the instance's quota (options.cpu_throttle); reset on EXITED.
  std::shared_ptr<ingress::CpuThrottle> throttle;
  // watch_conn: set before the watcher starts, then used only by it (and Cancel()).
  // watcher: guarded by mu_; moved out by whoever joins it (Delete or Shutdown).
  std::unique_ptr<ShimConnection> watch_conn;
  std::thread watcher;
};

}  // namespace skiff::agent
