#pragma once

// Request-based CPU for one instance: while no request is in flight its cgroup CPU quota
// sits at a floor (default 1 % of a CPU); the first request in (in-flight 0→1) raises it
// to the instance's full finite quota before the caller forwards, the last one out (1→0)
// lowers it again. One write to the already-open quota file per transition; none while
// the count moves between non-zero values. Never writes "max"/-1.
//
// cpu_allocation INSTANCE never throttles. startup_cpu_boost doubles the quota from
// creation until Ready() + boost_after_ready (10 s); the boost's end is clock-driven:
// every RequestStarted/RequestFinished/Ready/Tick compares the injected clock with the
// deadline, so the owner calls Tick() at or after BoostDeadline() (e.g. from a timer or
// the instance's watcher loop) to end a boost on an instance that receives no requests.
//
// Until Ready() a REQUEST instance is not throttled (it has to start up).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "sandbox/common/cgroup.h"

namespace skiff::ingress {

enum class CpuAllocation { kRequest, kInstance };

// Where the quota goes: a skiff::CpuQuota in production, a fake in unit tests.
class QuotaSink {
 public:
  virtual ~QuotaSink() = default;
  virtual absl::Status Set(uint64_t quota_us) = 0;
  virtual uint64_t period_us() const = 0;
};

struct CpuThrottleOptions {
  uint32_t vcpus_milli = 1000;  // full quota = vcpus_milli * period / 1000 (≥ 1000 µs)
  CpuAllocation cpu_allocation = CpuAllocation::kRequest;
  bool startup_cpu_boost = false;
  // The idle floor in basis points of one CPU (100 = 1 %); the quota is clamped to the
  // kernel's minimum of 1000 µs and to at most the full quota.
  uint32_t floor_cpu_bp = 100;
  absl::Duration boost_after_ready = absl::Seconds(10);
  std::function<absl::Time()> clock = nullptr;  // default absl::Now
};

class CpuThrottle {
 public:
  enum class State {
    kBoosted,      // 2× the full quota (startup boost)
    kUnthrottled,  // the full quota
    kThrottled,    // the floor
    kUnknown,      // the last write failed
  };
  struct Stats {
    State state = State::kUnknown;
    uint64_t quota_us = 0;  // last value written successfully
    uint32_t in_flight = 0;
    uint64_t unthrottles = 0;  // writes floor → full (0→1 transitions that wrote)
    uint64_t throttles = 0;    // writes → floor (1→0 transitions and Ready/boost end)
    uint64_t writes = 0;       // every successful write, including the initial one
    uint64_t became_busy = 0;  // in-flight 0→1 transitions
    uint64_t became_idle = 0;  // in-flight 1→0 transitions
    uint64_t write_errors = 0;
  };

  // Writes the initial quota (2× full with startup_cpu_boost, else full). InvalidArgument
  // names the field for a quota the kernel would refuse.
  static absl::StatusOr<std::unique_ptr<CpuThrottle>> Create(CpuQuota quota,
                                                             const CpuThrottleOptions& options);
  static absl::StatusOr<std::unique_ptr<CpuThrottle>> Create(std::unique_ptr<QuotaSink> sink,
                                                             const CpuThrottleOptions& options);

  CpuThrottle(const CpuThrottle&) = delete;
  CpuThrottle& operator=(const CpuThrottle&) = delete;
  ~CpuThrottle();

  // How many throttles in this process may hold their instance below its full quota right
  // now (at the floor, or unknown after a failed write). 0 lets the ingress skip its
  // anticipation (Router::Anticipate) without parsing anything: nothing needs raising.
  static uint64_t MaybeThrottledCount();

  // In-flight +1. On 0→1 the full quota is in effect when this returns (every concurrent
  // caller returns only after it is). On error the count is unchanged: the caller must not
  // forward the request nor call RequestFinished for it.
  absl::Status RequestStarted();
  // In-flight −1; on 1→0 writes the floor. FailedPrecondition if nothing is in flight.
  // A failed write still counts the request as finished.
  absl::Status RequestFinished();
  // The instance is Ready: starts the boost's 10 s countdown; REQUEST with nothing in
  // flight (and no boost) drops to the floor.
  absl::Status Ready();
  // The instance is being stopped: from now on it keeps its full quota (or the boost while
  // that lasts), so its SIGTERM handler runs at full speed within the grace period.
  absl::Status Stopping();
  // Re-evaluates the boost against the clock (ends it once past its deadline).
  absl::Status Tick();
  // When the boost ends (Ready + boost_after_ready); nullopt without a boost, before
  // Ready, or once it has ended.
  std::optional<absl::Time> BoostDeadline() const;

  Stats stats() const;
  uint64_t full_quota_us() const { return full_; }
  uint64_t floor_quota_us() const { return floor_; }
  uint64_t period_us() const { return period_; }

 private:
  CpuThrottle(std::unique_ptr<QuotaSink> sink, const CpuThrottleOptions& options, uint64_t full,
              uint64_t floor);
  bool BoostActiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t DesiredLocked(bool busy) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes DesiredLocked(busy) unless it is already in effect.
  absl::Status ApplyLocked(bool busy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the state, keeping MaybeThrottledCount() in step.
  void SetStateLocked(State state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CpuThrottleOptions options_;
  const uint64_t full_;
  const uint64_t floor_;
  uint64_t period_ = 0;  // the sink's, fixed at creation
  std::function<absl::Time()> clock_;

  // Moves between non-zero values lock-free; 0→1 and 1→0 only under mu_, so (count > 0)
  // is stable while mu_ is held.
  std::atomic<uint32_t> in_flight_{0};

  mutable absl::Mutex mu_;
  std::unique_ptr<QuotaSink> sink_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> ready_at_ ABSL_GUARDED_BY(mu_);
  bool boost_over_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<uint64_t> written_ ABSL_GUARDED_BY(mu_);  // nullopt after a failed write
  Stats counters_ ABSL_GUARDED_BY(mu_);
};

const char* CpuThrottleStateName(CpuThrottle::State s);

}  // namespace skiff::ingress
