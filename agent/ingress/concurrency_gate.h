#pragma once

// The concurrency gate: one ServicePool per service holds the service's Ready instances,
// counts each one's requests in flight against its `concurrency`, hands out Leases to the
// least-loaded instance with room, and queues the rest in a bounded FIFO with a deadline.
// ServiceRouter maps a request's Host to its service's pool (the Router the proxy uses).
//
// Threads: every method may be called from any thread. A pool's state is guarded by its
// own mutex; callbacks (`done`, `on_demand`) and CpuThrottle writes run with no pool lock
// held. One reaper thread per ServiceRouter expires queued requests at their deadline.
// Callbacks may call back into the gate (release a lease, Acquire again); work they cause
// on the same thread (granting the next waiter, its `done`) runs right after they return,
// not nested inside them, so a callback must not block waiting for another request's
// outcome. Keep them short: post to the caller's own executor.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/ingress/cpu_throttle.h"
#include "agent/ingress/lease.h"
#include "agent/ingress/router.h"

namespace skiff::ingress {

// The service a Host header names: "<service>.<node_domain>" or the bare "<service>",
// either with an optional ":port"; case-insensitive, returned lower-case. A service name
// is [a-z0-9][a-z0-9-]{0,62}. InvalidArgument (naming the host) otherwise, including a
// Host in another domain.
absl::StatusOr<std::string> ServiceNameFromHost(std::string_view host,
                                                std::string_view node_domain);

struct PoolOptions {
  uint32_t max_queue = 100;                          // queued requests; beyond → 429
  absl::Duration queue_timeout = absl::Seconds(30);  // waiting longer → 503
  absl::Duration retry_after = absl::Seconds(1);     // sent with 429/503
};

struct PoolStats {
  uint32_t ready = 0;      // backends taking new requests
  uint32_t draining = 0;   // backends finishing their in-flight requests
  uint32_t in_flight = 0;  // leases held, all backends
  uint32_t queued = 0;
  uint32_t capacity = 0;  // sum of ready backends' concurrency
  uint64_t granted = 0;   // leases handed out, ever
  uint64_t rejected_queue_full = 0;
  uint64_t expired_in_queue = 0;
  absl::Time last_active;  // last time a lease was granted or released (creation time at first)
};

struct BackendStats {
  std::string instance_id;
  uint32_t in_flight = 0;
  uint32_t concurrency = 0;
  bool draining = false;
};

class ServicePool {
 public:
  ServicePool(std::string service, PoolOptions options);
  ~ServicePool();  // pending waiters get 503 "service deleted"

  const std::string& service() const { return service_; }
  void SetOptions(PoolOptions options);

  // Called (no lock held) every time a request is queued or a queued request leaves the
  // queue; the activator hooks here to start instances on demand. Set once, before use.
  void SetDemandListener(absl::AnyInvocable<void()> on_demand);

  // A Ready instance joins (or rejoins: replaces the info, keeps its in-flight count).
  // `throttle` (may be null) gets RequestStarted() before a lease on this backend is
  // delivered and RequestFinished() after the lease is released. Queued requests that fit
  // are granted at once.
  void Add(BackendInfo info, std::shared_ptr<CpuThrottle> throttle);
  // No new leases on this backend; leases already held stay valid; requests queued pinned
  // to it (and later ones) get 503. False if unknown.
  bool Drain(const std::string& instance_id);
  // Blocks until the backend has no request in flight or `deadline` passes; true when it
  // has none (also when unknown).
  bool WaitIdle(const std::string& instance_id, absl::Time deadline);
  // The instance is gone: forgets it; requests queued pinned to it get 404. Leases still
  // held release harmlessly (a later Add of the same id starts from 0 in flight).
  void Remove(const std::string& instance_id);

  // Route one request (see Router::Route), pinned to `pin_instance` when non-empty (404
  // when that instance is not in the pool, 503 when it is draining; a pinned request queues
  // for that instance only and does not hold up unpinned requests behind it).
  // Picks, among non-draining backends with in_flight < concurrency, the one with the
  // fewest in flight (ties: the one added first). No room → queue (FIFO); queue full →
  // 429; queued past options.queue_timeout → 503; both with retry_after.
  uint64_t Acquire(const std::string& pin_instance, absl::AnyInvocable<void(RouteOutcome)> done);
  // Acquire's outcome when it is known at once (a lease, 404, 503 for a draining pinned
  // instance or a deleted service), with no callback and no ticket; nullopt when the request
  // would have to queue, having queued nothing (call Acquire then). See Router::TryRoute.
  std::optional<RouteOutcome> TryAcquire(const std::string& pin_instance);
  // See Router::Cancel.
  void Cancel(uint64_t ticket);
  // Answers every queued request now with `http_status` and `message` (the activator,
  // when a cold start failed and no backend can take them). Returns how many.
  size_t FailQueued(int http_status, const std::string& message);
  // Expires queued requests whose deadline is ≤ now (the router's reaper calls this);
  // returns the earliest remaining deadline.
  std::optional<absl::Time> ExpireQueued(absl::Time now);

  // The throttle of the backend an unpinned Acquire would pick now (null when none has room
  // or it has no throttle); nothing is taken. For Router::Anticipate.
  std::shared_ptr<CpuThrottle> LikelyThrottle() const;

  PoolStats Stats() const;
  std::vector<BackendStats> Backends() const;

 private:
  friend class ServiceRouter;
  struct Backend;
  struct Waiter;
  // The pool's state and logic. Leases hold it weakly (and their backend strongly), so a
  // lease released after Remove or after the pool is gone only touches live objects.
  class Core;

  // ServiceRouter: tickets it assigned (unique across pools), and its reaper's wake-up,
  // called (no pool lock held) with the deadline of every newly queued request.
  uint64_t AcquireWithTicket(uint64_t ticket, const std::string& pin_instance,
                             absl::AnyInvocable<void(RouteOutcome)> done);
  void SetDeadlineHook(std::function<void(absl::Time)> hook);
  // DeleteService: waiters get 503 "service deleted", and so does every later Acquire.
  void Close();

  const std::string service_;
  const std::shared_ptr<Core> core_;
};

// Host → service → pool, and the queue-deadline reaper.
class ServiceRouter : public Router {
 public:
  explicit ServiceRouter(std::string node_domain);  // starts the reaper thread
  ~ServiceRouter() override;  // stops and joins it; requests still queued get 503

  // Creates the service's pool, or updates its options if it exists; returns it.
  std::shared_ptr<ServicePool> PutService(const std::string& service, PoolOptions options);
  // Removes it; its queued requests get 503 "service <name> deleted", and so does any later
  // Acquire on the pool by whoever still holds it. False if unknown.
  bool DeleteService(const std::string& service);
  std::shared_ptr<ServicePool> Find(std::string_view service) const;
  std::vector<std::shared_ptr<ServicePool>> Pools() const;  // sorted by name

  // Router: ServiceNameFromHost(host) → 404 "no service <name> on this node" if unknown
  // (also 404 for a well-formed Host this node does not serve: another domain, an IP
  // literal; 400 for a malformed Host) → pool->Acquire. Tickets are unique across pools.
  uint64_t Route(const RouteRequest& request, absl::AnyInvocable<void(RouteOutcome)> done) override;
  // Router: the same answers as Route when no waiting is needed (pool->TryAcquire).
  std::optional<RouteOutcome> TryRoute(const RouteRequest& request) override;
  void Cancel(uint64_t ticket) override;
  // Router: the service's LikelyThrottle() gets RequestStarted() now and RequestFinished()
  // when the hold is released. Nothing for an unknown service or host, a service with no
  // instance that has room, or a throttle that refuses.
  CpuHold Anticipate(std::string_view host) override;

  const std::string& node_domain() const { return node_domain_; }

 private:
  struct Reaper;   // the earliest queue deadline and the reaper thread's wake-up
  struct Tickets;  // ticket → pool of every request still waiting for its `done`

  void ReaperLoop();
  // The pool the Host names; null with *error set to Route's 400/404 answer otherwise.
  std::shared_ptr<ServicePool> PoolFor(std::string_view host_header,
                                       std::optional<RouteOutcome>* error) const;

  const std::string node_domain_;
  const std::shared_ptr<Reaper> reaper_;
  const std::shared_ptr<Tickets> tickets_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<ServicePool>, std::less<>> pools_ ABSL_GUARDED_BY(mu_);
  std::thread reaper_thread_;  // last: starts once everything above exists
};

}  // namespace skiff::ingress
