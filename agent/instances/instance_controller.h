#pragma once

// The node's instance table and everything it owns: creation (validate → image →
// process → address → state dir → shim), the state machine fed by one watcher thread
// per instance (ShimConnection::Subscribe), stop/delete, capacity accounting, the IP
// pool's allocations, lifecycle events, and recovery after an agent restart.
//
// Threads: every public method may be called from any gRPC thread. `mu_` guards the
// table, the pending set and the allocation totals; events are published while it is
// held, so sequence order is state order. One watcher thread per live instance applies
// shim statuses under `mu_`. Lock order: mu_ → EventBus → IpPool.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/ingress/cpu_throttle.h"
#include "agent/instances/event_bus.h"
#include "agent/instances/ip_pool.h"
#include "agent/instances/runtime.h"
#include "agent/instances/spec_validation.h"
#include "images/image_store.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::agent {

struct ControllerOptions {
  std::string state_dir = "/run/skiff";  // instances live in <state_dir>/instances/<id>
  Resources capacity;                    // what the node offers to instances
  uint32_t pids_limit = 4096;            // per instance
  // Instances' cgroups are <cgroup_parent>/<id> below every hierarchy's root.
  std::string cgroup_parent = "skiff";
  std::string version = "0.1.0";
  // Request-based CPU (the ingress is on): every running instance gets a CpuThrottle on its
  // cgroup's quota (see agent/ingress/cpu_throttle.h), whose idle floor is
  // cpu_floor_bp basis points of one CPU. Off: the quota stays as the shim set it.
  bool cpu_throttle = false;
  uint32_t cpu_floor_bp = 100;
  // gen2 microVMs: the VMM and the guest's boot files. All empty: GEN2 specs are refused
  // with FAILED_PRECONDITION naming the missing flags.
  std::string gen2_vmm;
  std::string gen2_kernel;
  std::string gen2_initramfs;
};

// Called by Stop before the instance is signalled: stop sending it requests and wait
// (until `deadline` at most) for those in flight. The grace period left after it returns
// is what SIGTERM gets.
using DrainHook = std::function<void(const v1::Instance& instance, absl::Time deadline)>;

struct RecoveryReport {
  int running = 0;                    // reconnected to a live shim
  int exited = 0;                     // shim gone; final status from status.pb
  int lost = 0;                       // shim gone without a recorded exit
  std::vector<std::string> problems;  // dirs that could not be recovered, with why
};

class InstanceController {
 public:
  // Borrows everything; all must outlive the controller.
  InstanceController(ControllerOptions options, images::ImageStore* images,
                     InstanceRuntime* runtime, IpPool* ip_pool, EventBus* events);
  // Stops watching (instances keep running). Joins watcher threads whose connection
  // can be cancelled; see Shutdown().
  ~InstanceController();

  // Scans <state_dir>/instances/*/ and rebuilds the table. Kills nothing. Call once,
  // before serving.
  absl::StatusOr<RecoveryReport> Recover();

  // Creates and starts an instance (see agent.proto). On error nothing is left behind.
  absl::StatusOr<v1::Instance> Create(std::string instance_id, v1::InstanceSpec spec);
  // SIGTERM, grace (override or the spec's), SIGKILL; returns once EXITED.
  absl::StatusOr<v1::Instance> Stop(const std::string& instance_id,
                                    std::optional<absl::Duration> grace);
  // Removes an EXITED instance and its state dir; force stops it first (grace 0).
  absl::Status Delete(const std::string& instance_id, bool force);
  absl::StatusOr<v1::Instance> Get(const std::string& instance_id) const;
  // Sorted by id. InvalidArgument for a bad selector.
  absl::StatusOr<std::vector<v1::Instance>> List(const std::string& label_selector) const;
  v1::Node GetNode() const;

  // <state_dir>/instances/<id>/console.log of a known instance.
  absl::StatusOr<std::string> ConsoleLogPath(const std::string& instance_id) const;
  // True once the instance is EXITED (or gone from the table); waits up to `timeout`.
  bool WaitForExit(const std::string& instance_id, absl::Duration timeout) const;

  // The instance's CPU throttle (null when options.cpu_throttle is off, or the instance is
  // unknown or has exited).
  std::shared_ptr<ingress::CpuThrottle> Throttle(const std::string& instance_id) const;
  // Set once, before serving.
  void SetDrainHook(DrainHook hook);

  // Stops watching shims without touching instances: cancels every watcher's
  // connection and joins it. Watchers whose connection cannot be cancelled are left
  // running (the process is about to exit; skiffd never destroys its controller).
  void Shutdown();

 private:
  struct Record;

  std::string InstanceDir(const std::string& id) const;
  Resources FreeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a shim status, publishes its events, and releases resources on EXITED.
  void ApplyLocked(Record& rec, const v1::shim::ShimStatus& status, bool publish)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLocked(Record& rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartWatcherLocked(std::shared_ptr<Record> rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Watch(std::shared_ptr<Record> rec);
  // A CpuThrottle on the instance's cgroup quota, configured from its spec.
  absl::StatusOr<std::shared_ptr<ingress::CpuThrottle>> MakeThrottle(
      const v1::InstanceSpec& spec, const std::string& cgroup_path);
  // The next pool pair whose veth name is free on the host.
  absl::StatusOr<IpPair> AllocateFreePair();
  // Stops a just-launched shim and waits for its exit (Create's rollback).
  void StopAndWait(ShimConnection* conn);
  absl::Status RecoverOne(const std::string& id, RecoveryReport* report);
  // What a vanished shim left: kills and removes the instance's cgroup and removes
  // <dir>/rootfs. Call without mu_ held, before the LOST status releases the IP pair.
  absl::Status CleanUpLost(const std::string& dir, const std::string& cgroup_path);

  const ControllerOptions options_;
  images::ImageStore* const images_;
  InstanceRuntime* const runtime_;
  IpPool* const ip_pool_;
  EventBus* const events_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Record>> instances_ ABSL_GUARDED_BY(mu_);
  DrainHook drain_hook_;  // set before serving, then read-only
  // Ids being created (not yet visible), with their spec for the idempotency check.
  absl::flat_hash_map<std::string, v1::InstanceSpec> pending_ ABSL_GUARDED_BY(mu_);
  Resources allocated_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace skiff::agent
