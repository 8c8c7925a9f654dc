#pragma once

// What the HTTP proxy asks for every request: "which instance serves this?". The answer
// comes asynchronously — immediately when an instance has room, later when the request had
// to queue (or a cold start was needed), or as an HTTP error to send back.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "agent/ingress/lease.h"

namespace skiff::ingress {

struct RouteRequest {
  std::string host;          // the request's Host header as received (may carry :port)
  std::string pin_instance;  // value of the pin header (X-Skiff-Instance); empty = any
};

struct RouteOutcome {
  // Set: forward to lease.backend(); its CPU is already unthrottled. Hold the lease until
  // the response (or the upgraded tunnel) is finished, then drop it.
  Lease lease;
  // Unset lease: answer with this status (404 unknown service or instance, 429 queue full,
  // 503 queue wait expired / service has no capacity / stopping), this plain-text body,
  // and Retry-After (whole seconds, rounded up) when set.
  int http_status = 0;
  std::string message;
  std::optional<absl::Duration> retry_after;
  // The service name the request resolved to ("" when it resolved to none): the metrics
  // label.
  std::string service;
};

// Keeps an instance's CPU at its full quota while held (see Router::Anticipate); lets it go
// back to the floor (if nothing else is in flight there) when released or destroyed.
using CpuHold = ScopedRelease;

class Router {
 public:
  virtual ~Router() = default;
  // A request for `host` (its Host header, sniffed from the raw bytes) is arriving on a
  // connection that had been quiet; its header is not parsed yet. The instance it would most
  // likely be routed to gets its CPU raised now (request-based CPU), so the quota write and
  // the wake-up it causes overlap the parsing and routing instead of following them. Hold
  // the result until Route has answered: the granted lease then keeps the CPU up, and a
  // wrong guess (another instance, an error) only lets the predicted instance run for those
  // microseconds. Default: nothing to raise.
  virtual CpuHold Anticipate(std::string_view /*host*/) { return CpuHold(); }
  // Calls `done` exactly once, on any thread, possibly before Route returns. Returns a
  // ticket that Cancel accepts while the request waits (0 when `done` already ran).
  virtual uint64_t Route(const RouteRequest& request,
                         absl::AnyInvocable<void(RouteOutcome)> done) = 0;
  // Route's outcome when it is known at once — a lease on an instance with room, or an error
  // answer — without `done`, a ticket or any allocation for them: the common request's fast
  // path. Nullopt when the request would have to wait (queue, cold start): then call Route,
  // which decides again. Default: always nullopt (every request goes through Route).
  virtual std::optional<RouteOutcome> TryRoute(const RouteRequest& /*request*/) {
    return std::nullopt;
  }
  // The proxy gave up on a waiting request (client gone, shutdown). If it is still
  // waiting, its `done` runs with http_status 503 (and no lease); if it was already
  // granted, nothing happens (the lease was or will be delivered to `done`).
  virtual void Cancel(uint64_t ticket) = 0;
};

}  // namespace skiff::ingress
