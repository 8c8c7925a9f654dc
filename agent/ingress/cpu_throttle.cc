#include "agent/ingress/cpu_throttle.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"

namespace skiff::ingress {
namespace {

constexpr uint64_t kKernelMinQuotaUs = 1000;
constexpr uint32_t kMaxVcpusMilli = 1000000;  // 1000 CPUs

class CpuQuotaSink : public QuotaSink {
 public:
  explicit CpuQuotaSink(CpuQuota quota) : quota_(std::move(quota)) {}
  absl::Status Set(uint64_t quota_us) override { return quota_.Set(quota_us); }
  uint64_t period_us() const override { return quota_.period_us(); }

 private:
  CpuQuota quota_;
};

// Throttles whose instance may be below its full quota (kThrottled, or kUnknown after a
// failed write), process-wide.
std::atomic<uint64_t> g_maybe_throttled{0};

// Counted in g_maybe_throttled: at the floor, or unknown after a failed write.
bool MaybeThrottled(CpuThrottle::State state) {
  return state == CpuThrottle::State::kThrottled || state == CpuThrottle::State::kUnknown;
}

}  // namespace

uint64_t CpuThrottle::MaybeThrottledCount() {
  return g_maybe_throttled.load(std::memory_order_relaxed);
}

CpuThrottle::~CpuThrottle() {
  absl::MutexLock l(&mu_);
  if (MaybeThrottled(counters_.state)) g_maybe_throttled.fetch_sub(1, std::memory_order_relaxed);
}

void CpuThrottle::SetStateLocked(State state) {
  const bool was = MaybeThrottled(counters_.state);
  const bool is = MaybeThrottled(state);
  counters_.state = state;
  if (is && !was) g_maybe_throttled.fetch_add(1, std::memory_order_relaxed);
  if (was && !is) g_maybe_throttled.fetch_sub(1, std::memory_order_relaxed);
}

absl::Status CpuThrottle::Stopping() {
  absl::MutexLock l(&mu_);
  stopping_ = true;
  return ApplyLocked(in_flight_.load(std::memory_order_acquire) > 0);
}

const char* CpuThrottleStateName(CpuThrottle::State s) {
  switch (s) {
    case CpuThrottle::State::kBoosted:
      return "boosted";
    case CpuThrottle::State::kUnthrottled:
      return "unthrottled";
    case CpuThrottle::State::kThrottled:
      return "throttled";
    case CpuThrottle::State::kUnknown:
      break;
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<CpuThrottle>> CpuThrottle::Create(
    CpuQuota quota, const CpuThrottleOptions& options) {
  return Create(std::make_unique<CpuQuotaSink>(std::move(quota)), options);
}

absl::StatusOr<std::unique_ptr<CpuThrottle>> CpuThrottle::Create(
    std::unique_ptr<QuotaSink> sink, const CpuThrottleOptions& options) {
  if (sink == nullptr) return absl::InvalidArgumentError("cpu throttle: no quota sink");
  const uint64_t period = sink->period_us();
  if (period == 0) return absl::InvalidArgumentError("cpu throttle: period_us is 0");
  if (options.vcpus_milli == 0 || options.vcpus_milli > kMaxVcpusMilli) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cpu throttle: vcpus_milli (", options.vcpus_milli, ") not in 1..", kMaxVcpusMilli));
  }
  const uint64_t full = uint64_t{options.vcpus_milli} * period / 1000;
  if (full < kKernelMinQuotaUs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cpu throttle: vcpus_milli (", options.vcpus_milli, ") gives a quota of ", full, " us per ",
        period, " us period, below the kernel's minimum of ", kKernelMinQuotaUs, " us"));
  }
  if (options.floor_cpu_bp > 10000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cpu throttle: floor_cpu_bp (", options.floor_cpu_bp, ") above one CPU (10000)"));
  }
  if (options.boost_after_ready < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("cpu throttle: boost_after_ready is negative");
  }
  uint64_t floor = period * options.floor_cpu_bp / 10000;
  if (floor < kKernelMinQuotaUs) floor = kKernelMinQuotaUs;
  if (floor > full) floor = full;

  std::unique_ptr<CpuThrottle> t(new CpuThrottle(std::move(sink), options, full, floor));
  {
    absl::MutexLock l(&t->mu_);
    // Until Ready nothing is throttled: full (or boosted) quota.
    SKIFF_RETURN_IF_ERROR(t->ApplyLocked(/*busy=*/false));
  }
  return t;
}

CpuThrottle::CpuThrottle(std::unique_ptr<QuotaSink> sink, const CpuThrottleOptions& options,
                         uint64_t full, uint64_t floor)
    : options_(options),
      full_(full),
      floor_(floor),
      period_(sink->period_us()),
      clock_(options.clock ? options.clock : [] { return absl::Now(); }),
      sink_(std::move(sink)) {
  // The quota the instance starts with is the full one its cgroup was created with (Create
  // writes it again at once): not counted in MaybeThrottledCount().
  counters_.state = State::kUnthrottled;
}

bool CpuThrottle::BoostActiveLocked() const {
  if (!options_.startup_cpu_boost || boost_over_) return false;
  if (!ready_at_.has_value()) return true;
  return clock_() < *ready_at_ + options_.boost_after_ready;
}

uint64_t CpuThrottle::DesiredLocked(bool busy) const {
  if (BoostActiveLocked()) return 2 * full_;
  if (stopping_) return full_;
  if (options_.cpu_allocation == CpuAllocation::kInstance) return full_;
  if (busy || !ready_at_.has_value()) return full_;
  return floor_;
}

absl::Status CpuThrottle::ApplyLocked(bool busy) {
  const bool boosted = BoostActiveLocked();
  if (options_.startup_cpu_boost && !boosted) boost_over_ = true;  // ends once, for good
  const uint64_t want = DesiredLocked(busy);
  State state = boosted ? State::kBoosted
                : (want == floor_ && !busy && options_.cpu_allocation == CpuAllocation::kRequest &&
                   ready_at_.has_value())
                    ? State::kThrottled
                    : State::kUnthrottled;
  if (written_.has_value() && *written_ == want) {
    SetStateLocked(state);
    return absl::OkStatus();
  }
  const std::optional<uint64_t> before = written_;
  if (absl::Status s = sink_->Set(want); !s.ok()) {
    written_.reset();
    ++counters_.write_errors;
    SetStateLocked(State::kUnknown);
    return Annotate(s, absl::StrCat("cpu throttle: set quota to ", want, " us"));
  }
  written_ = want;
  ++counters_.writes;
  counters_.quota_us = want;
  SetStateLocked(state);
  if (state == State::kThrottled) {
    ++counters_.throttles;
  } else if (before.has_value() && *before == floor_ && want > floor_) {
    ++counters_.unthrottles;
  }
  return absl::OkStatus();
}

absl::Status CpuThrottle::RequestStarted() {
  uint32_t c = in_flight_.load(std::memory_order_acquire);
  while (c > 0) {
    if (in_flight_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) {
      return absl::OkStatus();
    }
  }
  absl::MutexLock l(&mu_);
  if (in_flight_.load(std::memory_order_acquire) > 0) {
    // Non-zero stays non-zero while mu_ is held: the quota is already up.
    in_flight_.fetch_add(1, std::memory_order_acq_rel);
    return absl::OkStatus();
  }
  SKIFF_RETURN_IF_ERROR(ApplyLocked(/*busy=*/true));
  ++counters_.became_busy;
  // Published only after the write: concurrent callers wait on mu_ until it is in effect.
  in_flight_.store(1, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status CpuThrottle::RequestFinished() {
  uint32_t c = in_flight_.load(std::memory_order_acquire);
  while (c > 1) {
    if (in_flight_.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel)) {
      return absl::OkStatus();
    }
  }
  absl::MutexLock l(&mu_);
  c = in_flight_.load(std::memory_order_acquire);
  for (;;) {
    if (c == 0) {
      return absl::FailedPreconditionError("cpu throttle: RequestFinished with none in flight");
    }
    if (in_flight_.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel)) break;
  }
  if (c > 1) return absl::OkStatus();  // another request started meanwhile
  ++counters_.became_idle;
  // 1→0 happened under mu_: a new RequestStarted waits for this write, then raises it.
  return ApplyLocked(/*busy=*/false);
}

absl::Status CpuThrottle::Ready() {
  absl::MutexLock l(&mu_);
  if (!ready_at_.has_value()) ready_at_ = clock_();
  return ApplyLocked(in_flight_.load(std::memory_order_acquire) > 0);
}

absl::Status CpuThrottle::Tick() {
  absl::MutexLock l(&mu_);
  return ApplyLocked(in_flight_.load(std::memory_order_acquire) > 0);
}

std::optional<absl::Time> CpuThrottle::BoostDeadline() const {
  absl::MutexLock l(&mu_);
  if (!options_.startup_cpu_boost || boost_over_ || !ready_at_.has_value()) return std::nullopt;
  return *ready_at_ + options_.boost_after_ready;
}

CpuThrottle::Stats CpuThrottle::stats() const {
  absl::MutexLock l(&mu_);
  Stats s = counters_;
  s.in_flight = in_flight_.load(std::memory_order_acquire);
  return s;
}

}  // namespace skiff::ingress
