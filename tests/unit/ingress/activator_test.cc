// The activator against the real ServiceRouter/ServicePool and MetricsRegistry, with a fake
// InstanceLauncher that records its calls; "Ready" is simulated the way skiffd's instance
// watcher does it: pool->Add(...) then activator->InstanceReady(...).

#include "agent/ingress/activator.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/synchronization/mutex.h"
#include "agent/ingress/service_validation.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

class FakeLauncher : public InstanceLauncher {
 public:
  absl::Status Create(const std::string& id, const v1::InstanceSpec& spec) override {
    absl::MutexLock lock(&mu_);
    creates_.push_back(id);
    if (!create_error_.ok()) return create_error_;
    v1::Instance inst;
    inst.set_id(id);
    *inst.mutable_spec() = spec;
    inst.set_state(v1::STARTED);
    live_[id] = inst;
    return absl::OkStatus();
  }
  absl::Status StopAndDelete(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    stopped_.push_back(id);
    live_.erase(id);
    return absl::OkStatus();
  }
  std::vector<v1::Instance> ListLive(const std::string& service) override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Instance> out;
    for (const auto& [id, inst] : live_) {
      auto it = inst.spec().labels().find(kServiceLabel);
      if (it != inst.spec().labels().end() && it->second == service) out.push_back(inst);
    }
    return out;
  }

  void FailCreates(absl::Status st) {
    absl::MutexLock lock(&mu_);
    create_error_ = std::move(st);
  }
  // The instance exits by itself (still listed until deleted? no: ListLive drops it).
  void Exit(const std::string& id) {
    absl::MutexLock lock(&mu_);
    live_.erase(id);
  }
  // Waits until at least `n` creates happened; returns their ids.
  std::vector<std::string> WaitCreates(size_t n, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();
      return creates_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return creates_;
  }
  std::vector<std::string> WaitStopped(size_t n, absl::Duration timeout = absl::Seconds(8)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();
      return stopped_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return stopped_;
  }
  std::vector<std::string> creates() {
    absl::MutexLock lock(&mu_);
    return creates_;
  }
  std::vector<std::string> stopped() {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }
  v1::InstanceSpec SpecOf(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return live_.at(id).spec();
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> creates_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> stopped_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Instance> live_ ABSL_GUARDED_BY(mu_);
  absl::Status create_error_ ABSL_GUARDED_BY(mu_);
};

// Collects RouteOutcomes delivered on any thread.
class Outcomes {
 public:
  absl::AnyInvocable<void(RouteOutcome)> Sink() {
    return [this](RouteOutcome o) {
      absl::MutexLock lock(&mu_);
      got_.push_back(std::move(o));
    };
  }
  // Waits until `n` arrived (or timeout); returns how many did.
  size_t Wait(size_t n, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();
      return got_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return got_.size();
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return got_.size();
  }
  std::vector<RouteOutcome> Take() {
    absl::MutexLock lock(&mu_);
    return std::move(got_);
  }

 private:
  absl::Mutex mu_;
  std::vector<RouteOutcome> got_ ABSL_GUARDED_BY(mu_);
};

class ActivatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-activator-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    SKIFF_ASSERT_OK_AND_ASSIGN(activator_,
                               ServiceActivator::Create(dir_, &router_, &launcher_, &metrics_));
  }
  void TearDown() override {
    activator_.reset();
    std::filesystem::remove_all(dir_);
  }

  static v1::Service Service(const std::string& name, uint32_t concurrency, uint32_t min,
                             uint32_t max) {
    v1::Service s;
    s.set_name(name);
    s.mutable_template_()->set_image("localhost:5000/hello:latest");
    s.mutable_template_()->set_memory_bytes(64 << 20);
    s.mutable_template_()->set_concurrency(concurrency);
    s.set_min_instances(min);
    s.set_max_instances(max);
    return s;
  }

  // What skiffd's instance watcher does when an instance becomes Ready.
  void MarkReady(const std::string& service, const std::string& id) {
    std::shared_ptr<ServicePool> pool = router_.Find(service);
    ASSERT_NE(pool, nullptr);
    BackendInfo info;
    info.instance_id = id;
    info.service = service;
    info.ip = "10.0.0.2";
    info.port = 8080;
    info.concurrency = launcher_.SpecOf(id).concurrency();
    pool->Add(info, nullptr);
    activator_->InstanceReady(service, id);
  }
  // ...and when one exits.
  void MarkExited(const std::string& service, const std::string& id) {
    launcher_.Exit(id);
    router_.Find(service)->Remove(id);
    activator_->InstanceExited(service, id);
  }

  uint64_t Acquire(const std::string& service, Outcomes& outcomes) {
    return router_.Find(service)->Acquire("", outcomes.Sink());
  }

  v1::ServiceStats StatsOf(const std::string& name) {
    for (const v1::ServiceStats& s : activator_->Stats()) {
      if (s.name() == name) return s;
    }
    ADD_FAILURE() << "no stats for " << name;
    return {};
  }

  std::string dir_;
  ServiceRouter router_{"skiff.local"};
  MetricsRegistry metrics_;
  FakeLauncher launcher_;
  std::unique_ptr<ServiceActivator> activator_;
};

TEST_F(ActivatorTest, PutValidatesFillsDefaultsAndCreatesThePool) {
  EXPECT_THAT(activator_->Put(Service("Bad_Name", 1, 0, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("service.name")));
  v1::Service no_mem = Service("web", 1, 0, 1);
  no_mem.mutable_template_()->set_memory_bytes(0);
  EXPECT_THAT(activator_->Put(no_mem), StatusIs(absl::StatusCode::kInvalidArgument,
                                                HasSubstr("service.template.memory_bytes")));
  EXPECT_EQ(router_.Find("web"), nullptr);  // a bad Put changes nothing
  EXPECT_TRUE(activator_->List().empty());

  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service s, activator_->Put(Service("web", 4, 0, 0)));
  EXPECT_EQ(s.max_instances(), 10u);
  EXPECT_EQ(s.template_().labels().at(kServiceLabel), "web");
  ASSERT_NE(router_.Find("web"), nullptr);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/services/web.pb"));
  ASSERT_EQ(activator_->List().size(), 1u);
  EXPECT_TRUE(launcher_.creates().empty());  // min 0: nothing starts until a request
}

TEST_F(ActivatorTest, ServicesSurviveARestartAndACorruptFileIsSkipped) {
  v1::Service a = Service("alpha", 2, 0, 3);
  *a.mutable_idle_timeout() = ToProto(absl::Seconds(7));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service stored_a, activator_->Put(a));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service stored_b, activator_->Put(Service("beta", 1, 0, 1)));
  // Put again replaces.
  v1::Service b2 = Service("beta", 1, 0, 5);
  SKIFF_ASSERT_OK_AND_ASSIGN(stored_b, activator_->Put(b2));
  { std::ofstream(dir_ + "/services/junk.pb") << "\x0a\xff garbage"; }
  activator_.reset();

  ServiceRouter router2("skiff.local");
  SKIFF_ASSERT_OK_AND_ASSIGN(auto again,
                             ServiceActivator::Create(dir_, &router2, &launcher_, nullptr));
  std::vector<v1::Service> list = again->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].SerializeAsString(), stored_a.SerializeAsString());
  EXPECT_EQ(list[1].SerializeAsString(), stored_b.SerializeAsString());
  EXPECT_EQ(list[1].max_instances(), 5u);
  EXPECT_NE(router2.Find("alpha"), nullptr);
  EXPECT_NE(router2.Find("beta"), nullptr);
  ASSERT_EQ(again->LoadErrors().size(), 1u);
  EXPECT_THAT(again->LoadErrors()[0], StatusIs(absl::StatusCode::kDataLoss, HasSubstr("junk.pb")));
  again.reset();
}

TEST_F(ActivatorTest, FirstRequestColdStartsOneInstanceAndIsGrantedWhenReady) {
  SKIFF_ASSERT_OK(activator_->Put(Service("web", 4, 0, 10)).status());
  Outcomes outcomes;
  Acquire("web", outcomes);
  std::vector<std::string> created = launcher_.WaitCreates(1);
  ASSERT_EQ(created.size(), 1u);
  EXPECT_TRUE(IsActivatorInstance("web", created[0])) << created[0];
  EXPECT_EQ(launcher_.SpecOf(created[0]).labels().at(kServiceLabel), "web");
  EXPECT_EQ(outcomes.Wait(1, absl::Milliseconds(200)), 0u);  // held until Ready
  EXPECT_EQ(StatsOf("web").starting(), 1u);
  EXPECT_EQ(StatsOf("web").queued(), 1u);
  EXPECT_EQ(StatsOf("web").desired(), 1u);

  MarkReady("web", created[0]);
  ASSERT_EQ(outcomes.Wait(1), 1u);
  std::vector<RouteOutcome> got = outcomes.Take();
  ASSERT_TRUE(got[0].lease) << got[0].http_status << " " << got[0].message;
  EXPECT_EQ(got[0].lease.backend().instance_id, created[0]);
  EXPECT_EQ(launcher_.creates().size(), 1u);  // exactly one cold start

  const v1::ServiceStats st = StatsOf("web");
  EXPECT_EQ(st.ready(), 1u);
  EXPECT_EQ(st.starting(), 0u);
  EXPECT_EQ(st.in_flight(), 1u);
  EXPECT_EQ(st.cold_starts(), 1u);
  EXPECT_EQ(st.requests(), 1u);
  EXPECT_EQ(metrics_.AddCounter("skiff_ingress_cold_starts_total", "", {"service"})->Value({"web"}),
            1);
  EXPECT_EQ(metrics_
                .AddHistogram("skiff_ingress_cold_start_seconds", "", {"service"},
                              MetricsRegistry::LatencyBuckets())
                ->Count({"web"}),
            1u);
  EXPECT_THAT(metrics_.Render(), HasSubstr("skiff_ingress_cold_starts_total{service=\"web\"} 1"));
}

TEST_F(ActivatorTest, BurstStartsOnlyWhatConcurrencyNeedsCappedByMax) {
  SKIFF_ASSERT_OK(activator_->Put(Service("web", 4, 0, 10)).status());
  SKIFF_ASSERT_OK(activator_->Put(Service("capped", 4, 0, 2)).status());
  Outcomes web, capped;
  for (int i = 0; i < 10; ++i) {
    Acquire("web", web);
    Acquire("capped", capped);
  }
  absl::SleepFor(absl::Milliseconds(300));  // let any extra start show up
  int web_creates = 0, capped_creates = 0;
  std::vector<std::string> created = launcher_.creates();
  for (const std::string& id : created) {
    if (IsActivatorInstance("web", id)) ++web_creates;
    if (IsActivatorInstance("capped", id)) ++capped_creates;
  }
  EXPECT_EQ(web_creates, 3);  // ceil(10 / 4)
  EXPECT_EQ(capped_creates, 2);
  EXPECT_EQ(StatsOf("web").desired(), 3u);
  EXPECT_EQ(StatsOf("capped").desired(), 2u);

  for (const std::string& id : created)
    MarkReady(IsActivatorInstance("web", id) ? "web" : "capped", id);
  EXPECT_EQ(web.Wait(10), 10u);
  EXPECT_EQ(capped.Wait(8), 8u);  // two instances of 4; two more stay queued
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(capped.size(), 8u);
  EXPECT_EQ(StatsOf("capped").queued(), 2u);
  EXPECT_EQ(launcher_.creates().size(), 5u);
  EXPECT_EQ(StatsOf("web").cold_starts(), 3u);
  // Answer the two still queued before `capped` goes out of scope.
  EXPECT_EQ(router_.Find("capped")->FailQueued(503, "test over"), 2u);
}

TEST_F(ActivatorTest, FailedColdStartAnswersQueuedRequestsWith503AndTheError) {
  launcher_.FailCreates(absl::NotFoundError("resolve(localhost:5000/nope): manifest unknown"));
  v1::Service s = Service("web", 4, 0, 10);
  s.mutable_template_()->set_image("localhost:5000/nope");
  SKIFF_ASSERT_OK(activator_->Put(s).status());
  Outcomes outcomes;
  Acquire("web", outcomes);
  Acquire("web", outcomes);
  ASSERT_EQ(outcomes.Wait(2), 2u);
  for (const RouteOutcome& o : outcomes.Take()) {
    EXPECT_FALSE(o.lease);
    EXPECT_EQ(o.http_status, 503);
    EXPECT_THAT(o.message, HasSubstr("cold start of web failed: resolve(localhost:5000/nope): "
                                     "manifest unknown"));
  }
  EXPECT_EQ(launcher_.creates().size(), 1u);
  EXPECT_THAT(StatsOf("web").last_start_error(), HasSubstr("manifest unknown"));
  EXPECT_EQ(StatsOf("web").starting(), 0u);
  EXPECT_EQ(StatsOf("web").queued(), 0u);

  // Backoff: within 1 s of the failure a request gets the same answer without a start...
  auto expect_503 = [&] {
    Outcomes o;
    Acquire("web", o);
    ASSERT_EQ(o.Wait(1), 1u);
    RouteOutcome got = std::move(o.Take()[0]);
    EXPECT_EQ(got.http_status, 503);
    EXPECT_THAT(got.message, HasSubstr("cold start of web failed"));
  };
  expect_503();
  EXPECT_EQ(launcher_.creates().size(), 1u);
  // ...after it, one more start (which fails too: the next backoff is 2 s).
  absl::SleepFor(absl::Milliseconds(1100));
  expect_503();
  EXPECT_EQ(launcher_.creates().size(), 2u);
  absl::SleepFor(absl::Milliseconds(1100));
  expect_503();
  EXPECT_EQ(launcher_.creates().size(), 2u);
  // The image is fixed; once the backoff ends, a request starts one that serves it.
  launcher_.FailCreates(absl::OkStatus());
  absl::SleepFor(absl::Milliseconds(1000));
  Outcomes ok;
  Acquire("web", ok);
  std::vector<std::string> created = launcher_.WaitCreates(3);
  ASSERT_EQ(created.size(), 3u);
  MarkReady("web", created[2]);
  ASSERT_EQ(ok.Wait(1), 1u);
  EXPECT_TRUE(ok.Take()[0].lease);
  EXPECT_EQ(StatsOf("web").last_start_error(), "");
}

TEST_F(ActivatorTest, InstanceExitingBeforeReadyFailsTheColdStart) {
  SKIFF_ASSERT_OK(activator_->Put(Service("web", 4, 0, 10)).status());
  Outcomes outcomes;
  Acquire("web", outcomes);
  std::vector<std::string> created = launcher_.WaitCreates(1);
  ASSERT_EQ(created.size(), 1u);
  MarkExited("web", created[0]);
  ASSERT_EQ(outcomes.Wait(1), 1u);
  RouteOutcome o = std::move(outcomes.Take()[0]);
  EXPECT_EQ(o.http_status, 503);
  EXPECT_THAT(o.message, HasSubstr(absl::StrCat("cold start of web failed: instance ", created[0],
                                                " exited before it was Ready")));
  // The exited instance is deleted on the next tick.
  EXPECT_EQ(launcher_.WaitStopped(1, absl::Seconds(3)).size(), 1u);
  EXPECT_EQ(launcher_.stopped()[0], created[0]);
}

TEST_F(ActivatorTest, IdleScaleDownToMinThenToZero) {
  v1::Service s = Service("web", 1, 1, 5);
  *s.mutable_idle_timeout() = ToProto(absl::Seconds(1));
  SKIFF_ASSERT_OK(activator_->Put(s).status());
  std::vector<std::string> created = launcher_.WaitCreates(1);  // min_instances
  ASSERT_EQ(created.size(), 1u);
  MarkReady("web", created[0]);
  // Two requests at concurrency 1: a second instance starts for the second.
  Outcomes outcomes;
  Acquire("web", outcomes);
  Acquire("web", outcomes);
  created = launcher_.WaitCreates(2);
  ASSERT_EQ(created.size(), 2u);
  MarkReady("web", created[1]);
  ASSERT_EQ(outcomes.Wait(2), 2u);
  EXPECT_EQ(StatsOf("web").ready(), 2u);
  const absl::Time released = absl::Now();
  outcomes.Take();  // releases both leases
  // Idle for 1 s → back to min_instances (1), within a tick or two.
  std::vector<std::string> stopped = launcher_.WaitStopped(1);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_GE(absl::Now() - released, absl::Seconds(1));
  EXPECT_EQ(stopped[0], created[1]);  // the newest goes first
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_EQ(launcher_.stopped().size(), 1u);  // min_instances stays
  EXPECT_EQ(StatsOf("web").ready(), 1u);
  EXPECT_EQ(router_.Find("web")->Backends().size(), 1u);

  // min 0: scale to zero.
  s.set_min_instances(0);
  SKIFF_ASSERT_OK(activator_->Put(s).status());
  stopped = launcher_.WaitStopped(2);
  ASSERT_EQ(stopped.size(), 2u);
  EXPECT_EQ(stopped[1], created[0]);
  EXPECT_EQ(StatsOf("web").ready(), 0u);
  EXPECT_EQ(launcher_.ListLive("web").size(), 0u);

  // ...and back: the next request cold-starts again.
  Acquire("web", outcomes);
  created = launcher_.WaitCreates(3);
  ASSERT_EQ(created.size(), 3u);
  MarkReady("web", created[2]);
  EXPECT_EQ(outcomes.Wait(1), 1u);
}

TEST_F(ActivatorTest, BusyServiceIsNotScaledDown) {
  v1::Service s = Service("web", 1, 0, 5);
  *s.mutable_idle_timeout() = ToProto(absl::Seconds(1));
  SKIFF_ASSERT_OK(activator_->Put(s).status());
  Outcomes outcomes;
  Acquire("web", outcomes);
  std::vector<std::string> created = launcher_.WaitCreates(1);
  ASSERT_EQ(created.size(), 1u);
  MarkReady("web", created[0]);
  ASSERT_EQ(outcomes.Wait(1), 1u);
  absl::SleepFor(absl::Milliseconds(2500));  // lease held: in flight, not idle
  EXPECT_TRUE(launcher_.stopped().empty());
  outcomes.Take();
  EXPECT_EQ(launcher_.WaitStopped(1).size(), 1u);
}

TEST_F(ActivatorTest, LoweringMaxStopsTheSurplusWithoutWaitingForIdle) {
  v1::Service s = Service("web", 1, 3, 3);  // idle_timeout stays 60 s
  SKIFF_ASSERT_OK(activator_->Put(s).status());
  std::vector<std::string> created = launcher_.WaitCreates(3);
  ASSERT_EQ(created.size(), 3u);
  for (const std::string& id : created) MarkReady("web", id);
  // One request in flight, on the first instance (the least loaded, added first).
  Outcomes outcomes;
  Acquire("web", outcomes);
  ASSERT_EQ(outcomes.Wait(1), 1u);
  s.set_min_instances(1);
  s.set_max_instances(1);
  SKIFF_ASSERT_OK(activator_->Put(s).status());
  std::vector<std::string> stopped = launcher_.WaitStopped(2, absl::Seconds(4));
  ASSERT_EQ(stopped.size(), 2u);
  std::sort(stopped.begin(), stopped.end());
  std::vector<std::string> want = {created[1], created[2]};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(stopped, want);  // not the one with a request in flight
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_EQ(launcher_.stopped().size(), 2u);
  EXPECT_EQ(launcher_.creates().size(), 3u);
  outcomes.Take();
}

TEST_F(ActivatorTest, MinInstancesAreRestartedAfterAnExit) {
  SKIFF_ASSERT_OK(activator_->Put(Service("web", 4, 2, 5)).status());
  std::vector<std::string> created = launcher_.WaitCreates(2);
  ASSERT_EQ(created.size(), 2u);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(launcher_.creates().size(), 2u);
  MarkReady("web", created[0]);
  MarkReady("web", created[1]);
  EXPECT_EQ(StatsOf("web").ready(), 2u);
  MarkExited("web", created[0]);  // crashed
  created = launcher_.WaitCreates(3);
  ASSERT_EQ(created.size(), 3u);
  MarkReady("web", created[2]);
  EXPECT_EQ(StatsOf("web").ready(), 2u);
  // The crashed one is deleted; no other start happens.
  std::vector<std::string> stopped = launcher_.WaitStopped(1, absl::Seconds(3));
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0], created[0]);
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_EQ(launcher_.creates().size(), 3u);
}

TEST_F(ActivatorTest, ARestartedActivatorAdoptsLiveInstancesInsteadOfStartingMore) {
  SKIFF_ASSERT_OK(activator_->Put(Service("web", 4, 2, 5)).status());
  std::vector<std::string> created = launcher_.WaitCreates(2);
  ASSERT_EQ(created.size(), 2u);
  MarkReady("web", created[0]);  // the other is still starting when skiffd restarts
  activator_.reset();

  // A new router (skiffd restarted): no instance is in any pool yet.
  ServiceRouter router2("skiff.local");
  SKIFF_ASSERT_OK_AND_ASSIGN(auto again,
                             ServiceActivator::Create(dir_, &router2, &launcher_, nullptr));
  absl::SleepFor(absl::Milliseconds(1500));  // a control tick
  EXPECT_EQ(launcher_.creates().size(), 2u);
  EXPECT_TRUE(launcher_.stopped().empty());
  // A crash of one of them is made up for.
  launcher_.Exit(created[1]);
  again->InstanceExited("web", created[1]);
  EXPECT_EQ(launcher_.WaitCreates(3).size(), 3u);
  again.reset();
}

TEST_F(ActivatorTest, DeleteStopsEverythingAndFailsQueuedRequests) {
  SKIFF_ASSERT_OK(activator_->Put(Service("web", 1, 2, 2)).status());
  std::vector<std::string> created = launcher_.WaitCreates(2);
  ASSERT_EQ(created.size(), 2u);
  MarkReady("web", created[0]);
  MarkReady("web", created[1]);
  Outcomes granted, queued;
  Acquire("web", granted);
  Acquire("web", granted);
  ASSERT_EQ(granted.Wait(2), 2u);
  Acquire("web", queued);  // max 2 reached: waits
  EXPECT_EQ(queued.Wait(1, absl::Milliseconds(100)), 0u);

  SKIFF_ASSERT_OK(activator_->Delete("web"));
  ASSERT_EQ(queued.Wait(1), 1u);
  EXPECT_EQ(queued.Take()[0].http_status, 503);
  std::vector<std::string> stopped = launcher_.stopped();
  std::sort(stopped.begin(), stopped.end());
  std::sort(created.begin(), created.end());
  EXPECT_EQ(stopped, created);
  EXPECT_TRUE(launcher_.ListLive("web").empty());
  EXPECT_EQ(router_.Find("web"), nullptr);
  EXPECT_TRUE(activator_->List().empty());
  EXPECT_TRUE(activator_->Stats().empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/services/web.pb"));
  EXPECT_THAT(activator_->Delete("web"), StatusIs(absl::StatusCode::kNotFound));
  granted.Take();
}

TEST(IsActivatorInstanceTest, Shape) {
  EXPECT_TRUE(IsActivatorInstance("web", "web-a1b2c"));
  EXPECT_FALSE(IsActivatorInstance("web", "web-a1b2"));
  EXPECT_FALSE(IsActivatorInstance("web", "web-A1b2c"));
  EXPECT_FALSE(IsActivatorInstance("web", "wex-a1b2c"));
  EXPECT_FALSE(IsActivatorInstance("we", "web-a1b2c"));
  EXPECT_FALSE(IsActivatorInstance("web", "web-a-b2c"));
}

}  // namespace
}  // namespace skiff::ingress
