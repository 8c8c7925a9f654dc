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

// An interface so that the API layer (agent/api) needs only this header, and its tests a
// fake; Create() returns the real one (activator.cc).
class ServiceActivator {
 public:
  // Borrows everything; `metrics` may be null. Loads <state_dir>/services/*.pb into
  // `router` (a corrupt or invalid file is skipped, not fatal: see LoadErrors) and starts
  // each service's min_instances.
  static absl::StatusOr<std::unique_ptr<ServiceActivator>> Create(std::string state_dir,
                                                                  ServiceRouter* router,
                                                                  InstanceLauncher* launcher,
                                                                  MetricsRegistry* metrics);
  // The real one stops the control thread and joins its start/stop threads; instances
  // keep running.
  virtual ~ServiceActivator() = default;

  // Validates (errors name the field: "service.name", "service.template.memory_bytes",
  // "service.max_instances", ...), persists, creates/updates the pool, starts
  // min_instances. Returns the stored service with defaults filled in. Replacing a
  // service keeps its running instances; instances started later use the new template.
  virtual absl::StatusOr<v1::Service> Put(v1::Service service) = 0;
  // Removes the pool (queued requests get 503), stops and deletes the service's
  // instances, then forgets it (and its file). NotFound if unknown. Blocks.
  virtual absl::Status Delete(const std::string& name) = 0;
  virtual std::vector<v1::Service> List() const = 0;  // sorted by name
  // Per service: instances (ready/starting/draining), in flight, queued, desired, cold
  // starts, requests granted, the last start error.
  virtual std::vector<v1::ServiceStats> Stats() const = 0;
  // Files under <state_dir>/services that Create skipped, one error each naming the file
  // (skiffd logs them).
  virtual std::vector<absl::Status> LoadErrors() const = 0;

  // skiffd's instance watcher tells the activator an instance labelled
  // skiff.service=<service> became Ready — call it after pool->Add(...) — (ends a cold
  // start: its duration goes to skiff_ingress_cold_start_seconds) or exited — call it
  // after pool->Remove(...) (an instance the activator started that exits is deleted
  // on the next tick; min_instances are restarted).
  virtual void InstanceReady(const std::string& service, const std::string& instance_id) = 0;
  virtual void InstanceExited(const std::string& service, const std::string& instance_id) = 0;
};

// True when `instance_id` has the shape of an instance the activator starts for `service`
// ("<service>-<5 of [a-z0-9]>").
bool IsActivatorInstance(const std::string& service, const std::string& instance_id);

}  // namespace skiff::ingress
