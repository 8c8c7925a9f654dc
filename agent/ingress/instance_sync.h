#pragma once

// Keeps the ingress in step with the instance table. A READY instance labelled
// skiff.service=<S> joins S's pool (with its CPU throttle) when S exists; STOPPING drains
// it, EXITED removes it. A periodic reconcile repairs what events cannot (a service put
// after its instances became Ready, an agent restart, a service deleted and put again).
// It also ends startup CPU boosts on time (CpuThrottle::Tick at BoostDeadline), serves as
// the InstanceController's drain hook, and reports pools, instances and throttles to
// /metrics.
//
// Threads: one thread consumes the event bus, ticks boosts (every `tick_every`) and
// reconciles (every `reconcile_every`); Drain runs on the stopping caller's thread.

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/ingress/concurrency_gate.h"
#include "agent/ingress/cpu_throttle.h"
#include "agent/ingress/metrics.h"
#include "agent/instances/event_bus.h"
#include "agent/instances/instance_controller.h"

namespace skiff::ingress {

struct InstanceSyncOptions {
  absl::Duration tick_every = absl::Milliseconds(50);
  absl::Duration reconcile_every = absl::Seconds(1);
  // Told when a labelled instance joins its pool / leaves the table (the activator).
  std::function<void(const std::string& service, const std::string& instance_id)> on_ready;
  std::function<void(const std::string& service, const std::string& instance_id)> on_exited;
};

class InstanceSync {
 public:
  // Borrows everything (all must outlive it); starts the thread after a first reconcile.
  InstanceSync(agent::InstanceController* controller, agent::EventBus* events,
               ServiceRouter* router, InstanceSyncOptions options);
  ~InstanceSync();  // stops and joins the thread

  // The InstanceController's drain hook: no new requests for the instance, then wait for
  // its in-flight ones until `deadline`.
  void Drain(const v1::Instance& instance, absl::Time deadline);
  // Gauges: skiff_ingress_in_flight, skiff_ingress_queue_depth, skiff_ingress_capacity,
  // skiff_ingress_instances{service,state}, skiff_instances{state},
  // skiff_cpu_throttle_transitions_total{instance,direction}, skiff_cpu_throttle_quota_cpus.
  void RegisterMetrics(MetricsRegistry* metrics);

  // One reconcile pass now (tests; the thread runs them periodically).
  void Reconcile();

 private:
  struct Member {
    std::string service;
    std::weak_ptr<ServicePool> pool;
    bool draining = false;
  };
  void Run();
  void OnEvent(const v1::Event& event);
  // Adds a READY instance to its service's pool if both exist; returns whether it is in.
  bool Join(const v1::Instance& instance);
  void Leave(const std::string& instance_id, bool exited);
  void TickBoosts(absl::Time now);

  agent::InstanceController* const controller_;
  agent::EventBus* const events_;
  ServiceRouter* const router_;
  const InstanceSyncOptions options_;

  mutable absl::Mutex mu_;
  // Replaced (under mu_) only by the thread, after an overflow.
  std::shared_ptr<agent::EventSubscription> subscription_;
  absl::flat_hash_map<std::string, Member> members_ ABSL_GUARDED_BY(mu_);
  // Instances whose startup boost is running, by when it ends.
  absl::flat_hash_map<std::string, std::pair<std::weak_ptr<CpuThrottle>, absl::Time>> boosts_
      ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace skiff::ingress
