#pragma once

// Services on this node and their instance counts: the activator starts an instance when
// a service's requests need one (scale from zero: the first request waits in the pool's
// queue while its cold start runs), more as concurrency requires
// (desired = clamp(ceil((in_flight + queued) / concurrency), min_instances, max_instances)),
// and stops idle ones down to min_instances after idle_timeout, through the normal graceful
// stop. Services are persisted under <state_dir>/services/<name>.pb and reloaded at start.
//
// Instances it starts are named "<service>-<5 random [a-z0-9]>" and labelled
// skiff.service=<service> (kServiceLabel) from the service's instance template.
// Threads: public methods from any thread; one control thread (idle scale-down, min
// instances, 1 s tick); cold starts run on their own short-lived threads.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/ingress/concurrency_gate.h"
#include "agent/ingress/metrics.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::ingress {

inline constexpr char kServiceLabel[] = "skiff.service";

// The instance side, as the activator needs it (InstanceController behind an adapter in
// skiffd; a fake in unit tests).
class InstanceLauncher {
 public:
  virtual ~InstanceLauncher() = default;
  // Creates and starts an instance; returns once it runs (Ready comes later, through
  // ServiceActivator::InstanceReady).
  virtual absl::Status Create(const std::string& instance_id, const v1::InstanceSpec& spec) = 0;
  // Drain, graceful stop (SIGTERM, grace, SIGKILL), then delete. Blocks.
  virtual absl::Status StopAndDelete(const std::string& instance_id) = 0;
  // Instances labelled skiff.service=<service> that have not EXITED.
  virtual std::vector<v1::Instance> ListLive(const std::string& service) = 0;
};

class ServiceActivator {
 public:
  // Borrows everything. Loads <state_dir>/services/*.pb into `router` (a corrupt file is
  // logged and skipped, not fatal).
  static absl::StatusOr<std::unique_ptr<ServiceActivator>> Create(std::string state_dir,
                                                                  ServiceRouter* router,
                                                                  InstanceLauncher* launcher,
                                                                  MetricsRegistry* metrics);
  ~ServiceActivator();  // stops the control thread; instances keep running

  // Validates (errors name the field: "service.name", "service.template.memory_bytes",
  // "service.max_instances", ...), persists, creates/updates the pool, starts
  // min_instances. Returns the stored service with defaults filled in.
  absl::StatusOr<v1::Service> Put(v1::Service service);
  // Stops and deletes the service's instances, then forgets it. NotFound if unknown.
  absl::Status Delete(const std::string& name);
  std::vector<v1::Service> List() const;
  // Per service: instances (ready/starting/draining), in flight, queued, desired, cold
  // starts.
  std::vector<v1::ServiceStats> Stats() const;

  // skiffd's instance watcher tells the activator an instance it labelled became Ready
  // (ends a cold start: its duration goes to skiff_ingress_cold_start_seconds) or exited.
  void InstanceReady(const std::string& service, const std::string& instance_id);
  void InstanceExited(const std::string& service, const std::string& instance_id);
};

}  // namespace skiff::ingress
