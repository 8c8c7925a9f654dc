#pragma once

// The seam between the instance controller and the processes that run instances.
// The real implementation (shim_runtime.h) launches skiff-shim and talks to it through
// shim/client.h; tests substitute fakes.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sandbox/common/cgroup.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::agent {

// One connection to one instance's shim.
class ShimConnection {
 public:
  virtual ~ShimConnection() = default;
  virtual absl::StatusOr<v1::shim::ShimStatus> GetStatus() = 0;
  // SIGTERM now, SIGKILL after `grace` (the config's when unset). Does not wait.
  virtual absl::Status Stop(std::optional<absl::Duration> grace) = 0;
  // Blocks, calling `on_status` on every change (first: the current status), until
  // EXITED (OK) or the shim goes away (Unavailable) or Cancel() (Cancelled).
  virtual absl::Status Subscribe(
      const std::function<void(const v1::shim::ShimStatus&)>& on_status) = 0;
  // Makes a blocked Subscribe return. Returns false if this connection cannot be
  // cancelled (then the caller must not wait for Subscribe to return).
  virtual bool Cancel() = 0;
};

class InstanceRuntime {
 public:
  virtual ~InstanceRuntime() = default;
  // Writes config.pb into config.state_dir() and starts the instance's shim; returns
  // once the shim answers, or the shim's start error. On error the shim has cleaned
  // up its sandbox (the state dir itself is the caller's).
  virtual absl::Status Launch(const v1::shim::ShimConfig& config) = 0;
  // Unavailable if no shim listens in `state_dir`.
  virtual absl::StatusOr<std::unique_ptr<ShimConnection>> Connect(const std::string& state_dir) = 0;
  // The last status the shim recorded in <state_dir>/status.pb.
  virtual absl::StatusOr<v1::shim::ShimStatus> ReadStatusFile(const std::string& state_dir) = 0;
  // Opens the CPU quota of the instance's cgroup (relative path, e.g. "skiff/<id>").
  virtual absl::StatusOr<std::unique_ptr<CpuQuota>> OpenCpuQuota(
      const std::string& cgroup_path) = 0;
  // Kills every process left in the instance's cgroup (relative path) and removes the
  // group, for an instance whose shim vanished. OK if the group does not exist.
  virtual absl::Status DestroyCgroup(const std::string& cgroup_path) = 0;
  // Whether a network link with this name exists in the host netns (a veth name the pool
  // would hand out that someone else already uses).
  virtual absl::StatusOr<bool> HostLinkExists(const std::string& name) = 0;
  // "v1" or "v2".
  virtual std::string cgroup_version() const = 0;
};

}  // namespace skiff::agent
