// CpuThrottle against a fake quota sink: the values written, their order, the boost's
// clock, failures, and many threads racing the in-flight count.

#include "agent/ingress/cpu_throttle.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Records every write; can fail or stall on demand.
class FakeQuota : public QuotaSink {
 public:
  struct Shared {
    absl::Mutex mu;
    std::vector<uint64_t> writes ABSL_GUARDED_BY(mu);
    std::atomic<uint64_t> current{0};
    std::atomic<int> fail_next{0};
    uint64_t stall_on = 0;  // Set(stall_on) signals `entered`, then sleeps
    absl::Notification entered;
    std::atomic<bool> stalled_write_done{false};
    std::vector<uint64_t> Writes() {
      absl::MutexLock l(&mu);
      return writes;
    }
  };
  FakeQuota(std::shared_ptr<Shared> s, uint64_t period) : s_(std::move(s)), period_(period) {}
  absl::Status Set(uint64_t quota_us) override {
    if (s_->fail_next.load() > 0) {
      s_->fail_next.fetch_sub(1);
      return absl::PermissionDeniedError("write(cpu.cfs_quota_us): EACCES (fake)");
    }
    if (s_->stall_on != 0 && quota_us == s_->stall_on && !s_->entered.HasBeenNotified()) {
      s_->entered.Notify();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      s_->stalled_write_done = true;
    }
    absl::MutexLock l(&s_->mu);
    s_->writes.push_back(quota_us);
    s_->current = quota_us;
    return absl::OkStatus();
  }
  uint64_t period_us() const override { return period_; }

 private:
  std::shared_ptr<Shared> s_;
  uint64_t period_;
};

struct FakeClock {
  absl::Mutex mu;
  absl::Time now = absl::FromUnixSeconds(1700000000);
  absl::Time Now() {
    absl::MutexLock l(&mu);
    return now;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu);
    now += d;
  }
};

class CpuThrottleTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<CpuThrottle>> Make(CpuThrottleOptions o,
                                                    uint64_t period = 100000) {
    o.clock = [this] { return clock_.Now(); };
    return CpuThrottle::Create(std::make_unique<FakeQuota>(q_, period), o);
  }
  std::shared_ptr<FakeQuota::Shared> q_ = std::make_shared<FakeQuota::Shared>();
  FakeClock clock_;
};

TEST_F(CpuThrottleTest, RejectsQuotasTheKernelWouldRefuseNamingTheField) {
  EXPECT_THAT(Make({.vcpus_milli = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vcpus_milli (0)")));
  EXPECT_THAT(Make({.vcpus_milli = 5}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("vcpus_milli (5) gives a quota of 500 us")));
  EXPECT_THAT(Make({.vcpus_milli = 2000000}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vcpus_milli (2000000)")));
  EXPECT_THAT(Make({.floor_cpu_bp = 10001}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("floor_cpu_bp (10001)")));
  EXPECT_THAT(Make({}, /*period=*/0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("period_us")));
  EXPECT_THAT(CpuThrottle::Create(std::unique_ptr<QuotaSink>(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(q_->Writes().empty());
}

TEST_F(CpuThrottleTest, FloorDefaultsToOnePercentAndNeverGoesBelowTheKernelMinimum) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto a, Make({.vcpus_milli = 1000}));
  EXPECT_EQ(a->full_quota_us(), 100000u);
  EXPECT_EQ(a->floor_quota_us(), 1000u);
  SKIFF_ASSERT_OK_AND_ASSIGN(auto b, Make({.vcpus_milli = 2500, .floor_cpu_bp = 0}));
  EXPECT_EQ(b->full_quota_us(), 250000u);
  EXPECT_EQ(b->floor_quota_us(), 1000u);
  SKIFF_ASSERT_OK_AND_ASSIGN(auto c, Make({.vcpus_milli = 250, .floor_cpu_bp = 5000}));
  EXPECT_EQ(c->floor_quota_us(), 25000u);  // clamped to the full quota
  SKIFF_ASSERT_OK_AND_ASSIGN(auto d, Make({.vcpus_milli = 1000, .floor_cpu_bp = 300}, 50000));
  EXPECT_EQ(d->full_quota_us(), 50000u);
  EXPECT_EQ(d->floor_quota_us(), 1500u);
  // Each Create wrote its full quota once, never "max".
  EXPECT_THAT(q_->Writes(), ElementsAre(100000u, 250000u, 25000u, 50000u));
}

TEST_F(CpuThrottleTest, StoppingKeepsTheFullQuotaForTheShutdown) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({.vcpus_milli = 1000}));
  SKIFF_ASSERT_OK(t->Ready());  // idle: the floor
  SKIFF_ASSERT_OK(t->Stopping());
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kUnthrottled);
  // Requests still finishing (or the last one ending) no longer drop it to the floor.
  SKIFF_ASSERT_OK(t->RequestStarted());
  SKIFF_ASSERT_OK(t->RequestFinished());
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_THAT(q_->Writes(), ElementsAre(100000u, 1000u, 100000u));
}

TEST_F(CpuThrottleTest, RequestAllocationWritesOncePerTransition) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({.vcpus_milli = 1000}));
  // Before Ready the instance starts up at its full quota, requests or not.
  SKIFF_ASSERT_OK(t->RequestStarted());
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_THAT(q_->Writes(), ElementsAre(100000u));
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kUnthrottled);

  SKIFF_ASSERT_OK(t->Ready());
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kThrottled);
  SKIFF_ASSERT_OK(t->RequestStarted());  // 0→1: full
  EXPECT_EQ(q_->current.load(), 100000u);
  SKIFF_ASSERT_OK(t->RequestStarted());  // 1→2: nothing
  SKIFF_ASSERT_OK(t->RequestStarted());  // 2→3: nothing
  SKIFF_ASSERT_OK(t->RequestFinished());
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_EQ(t->stats().in_flight, 1u);
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kUnthrottled);
  SKIFF_ASSERT_OK(t->RequestFinished());  // 1→0: floor
  SKIFF_ASSERT_OK(t->Ready());            // again: no change
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_THAT(q_->Writes(), ElementsAre(100000u, 1000u, 100000u, 1000u));
  CpuThrottle::Stats s = t->stats();
  EXPECT_EQ(s.state, CpuThrottle::State::kThrottled);
  EXPECT_EQ(s.quota_us, 1000u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.unthrottles, 1u);
  EXPECT_EQ(s.throttles, 2u);
  EXPECT_EQ(s.writes, 4u);
  EXPECT_EQ(s.became_busy, 2u);
  EXPECT_EQ(s.became_idle, 2u);
  EXPECT_STREQ(CpuThrottleStateName(s.state), "throttled");
}

TEST_F(CpuThrottleTest, FinishedWithNothingInFlightIsAnErrorAndWritesNothing) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({}));
  SKIFF_ASSERT_OK(t->Ready());
  EXPECT_THAT(t->RequestFinished(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("none in flight")));
  EXPECT_THAT(q_->Writes(), ElementsAre(100000u, 1000u));
  EXPECT_EQ(t->stats().in_flight, 0u);
}

TEST_F(CpuThrottleTest, InstanceAllocationNeverThrottles) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      auto t, Make({.vcpus_milli = 500, .cpu_allocation = CpuAllocation::kInstance}));
  SKIFF_ASSERT_OK(t->Ready());
  for (int i = 0; i < 5; ++i) {
    SKIFF_ASSERT_OK(t->RequestStarted());
    SKIFF_ASSERT_OK(t->RequestFinished());
  }
  clock_.Advance(absl::Hours(1));
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_THAT(q_->Writes(), ElementsAre(50000u));
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kUnthrottled);
  EXPECT_EQ(t->stats().throttles, 0u);
}

TEST_F(CpuThrottleTest, MaybeThrottledCountFollowsTheFloorAndUnknownStates) {
  const uint64_t base = CpuThrottle::MaybeThrottledCount();
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({}));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto always, Make({.cpu_allocation = CpuAllocation::kInstance}));
  EXPECT_EQ(CpuThrottle::MaybeThrottledCount(), base) << "starting up: full quota";
  SKIFF_ASSERT_OK(always->Ready());
  SKIFF_ASSERT_OK(t->Ready());
  EXPECT_EQ(CpuThrottle::MaybeThrottledCount(), base + 1) << "at the floor";
  SKIFF_ASSERT_OK(t->RequestStarted());
  EXPECT_EQ(CpuThrottle::MaybeThrottledCount(), base);
  q_->fail_next = 1;
  EXPECT_FALSE(t->RequestFinished().ok());
  EXPECT_EQ(CpuThrottle::MaybeThrottledCount(), base + 1) << "unknown after a failed write";
  SKIFF_ASSERT_OK(t->RequestStarted());
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_EQ(CpuThrottle::MaybeThrottledCount(), base + 1);
  t.reset();
  EXPECT_EQ(CpuThrottle::MaybeThrottledCount(), base) << "a destroyed throttle is not counted";
}

TEST_F(CpuThrottleTest, StartupBoostDoublesUntilReadyPlusTenSecondsThenFloor) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({.vcpus_milli = 1000, .startup_cpu_boost = true}));
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kBoosted);
  // No deadline before Ready: a slow start keeps its boost.
  EXPECT_EQ(t->BoostDeadline(), std::nullopt);
  clock_.Advance(absl::Minutes(5));
  SKIFF_ASSERT_OK(t->Tick());
  const absl::Time ready_at = clock_.Now();
  SKIFF_ASSERT_OK(t->Ready());
  EXPECT_EQ(t->BoostDeadline(), ready_at + absl::Seconds(10));
  SKIFF_ASSERT_OK(t->RequestStarted());
  SKIFF_ASSERT_OK(t->RequestFinished());
  clock_.Advance(absl::Seconds(10) - absl::Milliseconds(1));
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_THAT(q_->Writes(), ElementsAre(200000u));
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kBoosted);
  clock_.Advance(absl::Milliseconds(1));
  SKIFF_ASSERT_OK(t->Tick());  // boost over, idle REQUEST instance → floor
  EXPECT_THAT(q_->Writes(), ElementsAre(200000u, 1000u));
  EXPECT_EQ(t->BoostDeadline(), std::nullopt);
  SKIFF_ASSERT_OK(t->RequestStarted());
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_THAT(q_->Writes(), ElementsAre(200000u, 1000u, 100000u, 1000u));
}

TEST_F(CpuThrottleTest, BoostEndingMidRequestDropsToFullThenFloorAfterIt) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({.vcpus_milli = 2000, .startup_cpu_boost = true}));
  SKIFF_ASSERT_OK(t->Ready());
  SKIFF_ASSERT_OK(t->RequestStarted());
  clock_.Advance(absl::Seconds(11));
  // Without a Tick the next transition notices the deadline itself.
  SKIFF_ASSERT_OK(t->RequestStarted());  // 1→2: fast path, no write
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kUnthrottled);
  SKIFF_ASSERT_OK(t->RequestFinished());
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_THAT(q_->Writes(), ElementsAre(400000u, 200000u, 1000u));
}

TEST_F(CpuThrottleTest, InstanceBoostEndsAtTheNormalLimit) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({.vcpus_milli = 1000,
                                           .cpu_allocation = CpuAllocation::kInstance,
                                           .startup_cpu_boost = true}));
  SKIFF_ASSERT_OK(t->Ready());
  clock_.Advance(absl::Seconds(10));
  SKIFF_ASSERT_OK(t->RequestStarted());  // 0→1 re-evaluates the boost too
  SKIFF_ASSERT_OK(t->RequestFinished());
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_THAT(q_->Writes(), ElementsAre(200000u, 100000u));
}

TEST_F(CpuThrottleTest, FailedWritesAreReportedAndRetried) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({}));
  SKIFF_ASSERT_OK(t->Ready());
  q_->fail_next = 1;
  EXPECT_THAT(t->RequestStarted(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("set quota to 100000 us")));
  CpuThrottle::Stats s = t->stats();
  EXPECT_EQ(s.in_flight, 0u);  // not counted: the caller does not forward
  EXPECT_EQ(s.write_errors, 1u);
  EXPECT_EQ(s.state, CpuThrottle::State::kUnknown);
  SKIFF_ASSERT_OK(t->RequestStarted());  // retried
  q_->fail_next = 1;
  EXPECT_THAT(t->RequestFinished(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("set quota to 1000 us")));
  EXPECT_EQ(t->stats().in_flight, 0u);  // the request is over regardless
  SKIFF_ASSERT_OK(t->Tick());           // the floor is written on the next evaluation
  EXPECT_THAT(q_->Writes(), ElementsAre(100000u, 1000u, 100000u, 1000u));
  EXPECT_EQ(t->stats().state, CpuThrottle::State::kThrottled);
}

TEST_F(CpuThrottleTest, ConcurrentStarterWaitsForTheUnthrottleWrite) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t3, Make({}));
  auto& q3 = q_;
  SKIFF_ASSERT_OK(t3->Ready());
  q3->stall_on = 100000;  // only the 0→1 write stalls (100 ms inside Set)
  std::thread first([&] { EXPECT_THAT(t3->RequestStarted(), testing::IsOk()); });
  q3->entered.WaitForNotification();
  const auto t0 = std::chrono::steady_clock::now();
  SKIFF_ASSERT_OK(t3->RequestStarted());
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(q3->stalled_write_done.load()) << "second caller returned before the quota rose";
  EXPECT_GT(waited, std::chrono::milliseconds(20));
  first.join();
  EXPECT_EQ(t3->stats().in_flight, 2u);
  EXPECT_THAT(q3->Writes(), ElementsAre(100000u, 1000u, 100000u));
}

TEST_F(CpuThrottleTest, ManyThreadsOneWritePerTransitionAndNoRequestEverSeesTheFloor) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, Make({.vcpus_milli = 1000}));
  SKIFF_ASSERT_OK(t->Ready());
  constexpr int kThreads = 16;
  constexpr int kIters = 8000;
  std::atomic<int> saw_floor{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kIters; ++k) {
        if (!t->RequestStarted().ok()) ++errors;
        if (q_->current.load() != 100000u) ++saw_floor;
        if ((k + i) % 64 == 0) std::this_thread::yield();
        if (!t->RequestFinished().ok()) ++errors;
        // Idle gaps so the count often drops to 0 and races 0→1 against 1→0.
        if (k % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(5 + i));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(saw_floor.load(), 0) << "a request ran while the quota was at the floor";
  const std::vector<uint64_t> w = q_->Writes();
  CpuThrottle::Stats s = t->stats();
  std::printf("%d requests on %d threads: %llu 0->1, %llu 1->0, %zu writes\n", kThreads * kIters,
              kThreads, static_cast<unsigned long long>(s.became_busy),
              static_cast<unsigned long long>(s.became_idle), w.size());
  ASSERT_GE(w.size(), 2u);
  // Strict alternation after the initial full and Ready's floor: no redundant write.
  for (size_t k = 1; k < w.size(); ++k) {
    EXPECT_EQ(w[k], k % 2 == 1 ? 1000u : 100000u) << "write " << k;
  }
  EXPECT_GT(s.became_busy, 100u);
  EXPECT_EQ(s.became_busy, s.became_idle);
  EXPECT_EQ(s.unthrottles, s.became_busy);
  EXPECT_EQ(s.throttles, s.became_idle + 1);  // + Ready
  EXPECT_EQ(w.size(), 2 + s.became_busy + s.became_idle);
  EXPECT_EQ(s.writes, w.size());
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.state, CpuThrottle::State::kThrottled);
  EXPECT_EQ(w.back(), 1000u);
}

}  // namespace
}  // namespace skiff::ingress
