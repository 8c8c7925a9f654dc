// The concurrency gate against fake backends (no network): choice, limits, the FIFO queue and
// its deadlines (through the router's reaper, in real time), pinning, drain and removal, the
// CPU throttle around a lease, Host routing, and many threads racing acquire/release.

#include "agent/ingress/concurrency_gate.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// One request's answer: records every call of its `done` (there must be exactly one).
class Answer {
 public:
  Answer() : s_(std::make_shared<State>()) {}

  absl::AnyInvocable<void(RouteOutcome)> Callback() {
    return [s = s_](RouteOutcome o) {
      absl::MutexLock l(&s->mu);
      s->outcomes.push_back(std::move(o));
      s->at = absl::Now();
    };
  }
  int calls() const {
    absl::MutexLock l(&s_->mu);
    return static_cast<int>(s_->outcomes.size());
  }
  bool called() const { return calls() > 0; }
  bool WaitCalled(absl::Duration timeout) const {
    absl::MutexLock l(&s_->mu);
    auto has = [this]() { return !s_->outcomes.empty(); };
    return s_->mu.AwaitWithTimeout(absl::Condition(&has), timeout);
  }
  absl::Time at() const {
    absl::MutexLock l(&s_->mu);
    return s_->at;
  }
  // The first outcome (the test must have checked called()).
  RouteOutcome& outcome() {
    absl::MutexLock l(&s_->mu);
    return s_->outcomes.front();
  }
  std::string backend() {
    RouteOutcome& o = outcome();
    return o.lease ? o.lease.backend().instance_id : "<no lease: " + o.message + ">";
  }
  void Release() { outcome().lease.Release(); }

 private:
  struct State {
    mutable absl::Mutex mu;
    std::vector<RouteOutcome> outcomes ABSL_GUARDED_BY(mu);
    absl::Time at ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> s_;
};

BackendInfo Info(const std::string& id, uint32_t concurrency) {
  BackendInfo b;
  b.instance_id = id;
  b.service = "svc";
  b.ip = "10.0.0.1";
  b.port = 8080;
  b.concurrency = concurrency;
  return b;
}

PoolOptions Options(uint32_t max_queue = 100, absl::Duration queue_timeout = absl::Seconds(30)) {
  PoolOptions o;
  o.max_queue = max_queue;
  o.queue_timeout = queue_timeout;
  o.retry_after = absl::Seconds(3);
  return o;
}

uint32_t InFlight(const ServicePool& pool, const std::string& id) {
  for (const BackendStats& b : pool.Backends()) {
    if (b.instance_id == id) return b.in_flight;
  }
  return 9999;
}

// ---------------------------------------------------------------------------------------
// Host → service

TEST(ServiceNameFromHostTest, Table) {
  const std::string d = "skiff.local";
  struct Ok {
    std::string host;
    std::string service;
  };
  const std::string x63(63, 'x');
  for (const Ok& c : std::vector<Ok>{{"hello.skiff.local", "hello"},
                                     {"hello", "hello"},
                                     {"hello:8080", "hello"},
                                     {"hello.skiff.local:8080", "hello"},
                                     {"HeLLo.SKIFF.Local", "hello"},
                                     {"hello.skiff.local.", "hello"},
                                     {"a", "a"},
                                     {"9-to-5", "9-to-5"},
                                     {"hello:", "hello"},
                                     {x63 + ".skiff.local:65535", x63}}) {
    auto got = ServiceNameFromHost(c.host, d);
    ASSERT_TRUE(got.ok()) << c.host << ": " << got.status();
    EXPECT_EQ(*got, c.service) << c.host;
  }
  for (const char* bad :
       {"", "-hello", "hello_world", "a.b.skiff.local", "hello.example.com", "skiff.local", "[::1]",
        "[::1]:8080", "hello:80a", "hello:123456", "hello:70000", "he llo", "hello/x", "[::1",
        ".skiff.local", "hello..skiff.local", "hello.skiff.local.evil"}) {
    EXPECT_THAT(ServiceNameFromHost(bad, d), StatusIs(absl::StatusCode::kInvalidArgument))
        << "host " << bad;
  }
  EXPECT_THAT(ServiceNameFromHost(std::string(64, 'x'), d),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("service name")));
  EXPECT_THAT(ServiceNameFromHost("hello.example.com", d),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Host hello.example.com: not <service>.skiff.local")));
  EXPECT_THAT(ServiceNameFromHost("", d),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Host: empty")));
  // The node domain is matched without case and may be given absolute.
  EXPECT_EQ(*ServiceNameFromHost("hello.skiff.local", "Skiff.LOCAL."), "hello");
  EXPECT_EQ(*ServiceNameFromHost("HELLO.SKIFF.LOCAL.", "skiff.local"), "hello");
  EXPECT_THAT(ServiceNameFromHost("hello.example.com", "Skiff.Local."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Host hello.example.com: not <service>.skiff.local nor")));
  // Without a node domain only bare names are services.
  EXPECT_EQ(*ServiceNameFromHost("hello:1", ""), "hello");
  EXPECT_FALSE(ServiceNameFromHost("hello.skiff.local", "").ok());
}

// ---------------------------------------------------------------------------------------
// ServicePool

TEST(ServicePoolTest, LeastLoadedWithTiesToTheFirstAdded) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 10), nullptr);
  pool.Add(Info("b", 10), nullptr);
  pool.Add(Info("c", 10), nullptr);
  std::vector<Answer> got(5);
  for (Answer& a : got) {
    EXPECT_EQ(pool.Acquire("", a.Callback()), 0u);  // granted at once: no ticket
    ASSERT_TRUE(a.called());
  }
  EXPECT_EQ(got[0].backend(), "a");
  EXPECT_EQ(got[1].backend(), "b");
  EXPECT_EQ(got[2].backend(), "c");
  EXPECT_EQ(got[3].backend(), "a");
  EXPECT_EQ(got[4].backend(), "b");
  EXPECT_EQ(got[0].outcome().service, "svc");
  // c has 1, a 2, b 2: c; then release a's two: a (0) beats c (2).
  Answer next;
  pool.Acquire("", next.Callback());
  EXPECT_EQ(next.backend(), "c");
  got[0].Release();
  got[3].Release();
  Answer after;
  pool.Acquire("", after.Callback());
  EXPECT_EQ(after.backend(), "a");
  EXPECT_EQ(pool.Stats().in_flight, 5u);
  EXPECT_EQ(pool.Stats().granted, 7u);
}

TEST(ServicePoolTest, ConcurrencyOneSerialisesTwoRequests) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), nullptr);
  Answer first, second;
  pool.Acquire("", first.Callback());
  ASSERT_TRUE(first.called());
  const uint64_t ticket = pool.Acquire("", second.Callback());
  EXPECT_NE(ticket, 0u);
  EXPECT_FALSE(second.called());
  EXPECT_EQ(pool.Stats().queued, 1u);
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  first.Release();
  ASSERT_TRUE(second.called());
  EXPECT_EQ(second.backend(), "a");
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  EXPECT_EQ(pool.Stats().queued, 0u);
  second.Release();
  EXPECT_EQ(InFlight(pool, "a"), 0u);
  EXPECT_EQ(first.calls(), 1);
  EXPECT_EQ(second.calls(), 1);
}

TEST(ServicePoolTest, QueueIsFifo) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), nullptr);
  Answer holder;
  pool.Acquire("", holder.Callback());
  std::vector<int> order;
  absl::Mutex mu;
  std::vector<Lease> leases(4);
  for (int i = 0; i < 4; ++i) {
    pool.Acquire("", [&, i](RouteOutcome o) {
      absl::MutexLock l(&mu);
      order.push_back(i);
      leases[i] = std::move(o.lease);
    });
  }
  EXPECT_TRUE(order.empty());
  holder.Release();
  for (int i = 0; i < 4; ++i) {
    Lease next;
    {
      absl::MutexLock l(&mu);
      ASSERT_EQ(order.size(), static_cast<size_t>(i + 1));
      EXPECT_EQ(order.back(), i);
      next = std::move(leases[i]);
    }
    ASSERT_TRUE(next);
    next.Release();  // grants the next waiter, on this thread
  }
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3));
}

TEST(ServicePoolTest, QueueFullAnswers429WithRetryAfter) {
  ServicePool pool("svc", Options(/*max_queue=*/2));
  pool.Add(Info("a", 1), nullptr);
  Answer holder, q1, q2, over;
  pool.Acquire("", holder.Callback());
  EXPECT_NE(pool.Acquire("", q1.Callback()), 0u);
  EXPECT_NE(pool.Acquire("", q2.Callback()), 0u);
  EXPECT_EQ(pool.Acquire("", over.Callback()), 0u);
  ASSERT_TRUE(over.called());
  EXPECT_FALSE(over.outcome().lease);
  EXPECT_EQ(over.outcome().http_status, 429);
  EXPECT_EQ(over.outcome().retry_after, absl::Seconds(3));
  EXPECT_THAT(over.outcome().message, HasSubstr("queue of service svc is full"));
  EXPECT_EQ(pool.Stats().rejected_queue_full, 1u);
  EXPECT_FALSE(q1.called());
  EXPECT_FALSE(q2.called());
}

TEST(ServicePoolTest, ExpireQueuedAnswers503AndReturnsTheEarliestRemainingDeadline) {
  ServicePool pool("svc", Options(100, absl::Seconds(10)));
  pool.Add(Info("a", 1), nullptr);
  Answer holder, early, late;
  pool.Acquire("", holder.Callback());
  const absl::Time t0 = absl::Now();
  pool.Acquire("", early.Callback());
  pool.SetOptions(Options(100, absl::Seconds(20)));
  pool.Acquire("", late.Callback());
  std::optional<absl::Time> next = pool.ExpireQueued(t0);
  ASSERT_TRUE(next.has_value());
  EXPECT_GE(*next, t0 + absl::Seconds(10));
  EXPECT_LT(*next, t0 + absl::Seconds(11));
  EXPECT_FALSE(early.called());
  next = pool.ExpireQueued(t0 + absl::Seconds(15));
  ASSERT_TRUE(early.called());
  EXPECT_EQ(early.outcome().http_status, 503);
  EXPECT_EQ(early.outcome().retry_after, absl::Seconds(3));
  EXPECT_THAT(early.outcome().message, HasSubstr("no capacity"));
  EXPECT_FALSE(late.called());
  ASSERT_TRUE(next.has_value());
  EXPECT_GE(*next, t0 + absl::Seconds(20));
  EXPECT_FALSE(pool.ExpireQueued(t0 + absl::Seconds(25)).has_value());
  ASSERT_TRUE(late.called());
  EXPECT_EQ(late.outcome().http_status, 503);
  EXPECT_EQ(pool.Stats().expired_in_queue, 2u);
  EXPECT_EQ(pool.Stats().queued, 0u);
  EXPECT_EQ(InFlight(pool, "a"), 1u);  // the holder is untouched
}

TEST(ServicePoolTest, CancelWhileQueuedAnswers503AndAfterGrantDoesNothing) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), nullptr);
  Answer holder, waiting, behind;
  pool.Acquire("", holder.Callback());
  const uint64_t t1 = pool.Acquire("", waiting.Callback());
  const uint64_t t2 = pool.Acquire("", behind.Callback());
  ASSERT_NE(t1, 0u);
  ASSERT_NE(t2, t1);
  pool.Cancel(t1);
  ASSERT_TRUE(waiting.called());
  EXPECT_EQ(waiting.outcome().http_status, 503);
  EXPECT_FALSE(waiting.outcome().lease);
  EXPECT_EQ(pool.Stats().queued, 1u);
  pool.Cancel(t1);  // again: nothing
  EXPECT_EQ(waiting.calls(), 1);
  holder.Release();
  ASSERT_TRUE(behind.called());
  ASSERT_TRUE(behind.outcome().lease);
  pool.Cancel(t2);  // already granted: no effect
  EXPECT_EQ(behind.calls(), 1);
  EXPECT_TRUE(behind.outcome().lease);
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  pool.Cancel(0);
  pool.Cancel(123456789);
}

TEST(ServicePoolTest, PinnedRequests) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), nullptr);
  pool.Add(Info("b", 5), nullptr);
  Answer to_b1, to_b2;
  pool.Acquire("b", to_b1.Callback());
  pool.Acquire("b", to_b2.Callback());
  EXPECT_EQ(to_b1.backend(), "b");
  EXPECT_EQ(to_b2.backend(), "b");  // pinned beats least-loaded (a has 0)

  Answer unknown;
  EXPECT_EQ(pool.Acquire("zzz", unknown.Callback()), 0u);
  ASSERT_TRUE(unknown.called());
  EXPECT_EQ(unknown.outcome().http_status, 404);
  EXPECT_THAT(unknown.outcome().message, HasSubstr("no instance zzz in service svc"));

  // a is full: a request pinned to it waits for a only; an unpinned one behind it goes to b.
  Answer on_a, pinned_a, free;
  pool.Acquire("a", on_a.Callback());
  ASSERT_EQ(on_a.backend(), "a");
  EXPECT_NE(pool.Acquire("a", pinned_a.Callback()), 0u);
  EXPECT_FALSE(pinned_a.called());
  pool.Acquire("", free.Callback());
  EXPECT_EQ(free.backend(), "b");
  to_b1.Release();  // room on b: the pinned waiter does not take it
  EXPECT_FALSE(pinned_a.called());
  on_a.Release();
  ASSERT_TRUE(pinned_a.called());
  EXPECT_EQ(pinned_a.backend(), "a");
}

TEST(ServicePoolTest, UnpinnedWaiterIsNotBlockedByAPinnedOneAhead) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), nullptr);
  pool.Add(Info("b", 1), nullptr);
  Answer ha, hb, pinned_a, any;
  pool.Acquire("a", ha.Callback());
  pool.Acquire("b", hb.Callback());
  pool.Acquire("a", pinned_a.Callback());
  pool.Acquire("", any.Callback());
  EXPECT_EQ(pool.Stats().queued, 2u);
  hb.Release();
  ASSERT_TRUE(any.called());
  EXPECT_EQ(any.backend(), "b");
  EXPECT_FALSE(pinned_a.called());
  ha.Release();
  ASSERT_TRUE(pinned_a.called());
  EXPECT_EQ(pinned_a.backend(), "a");
}

TEST(ServicePoolTest, DrainStopsNewLeasesKeepsHeldOnesAndWaitIdle) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 10), nullptr);
  pool.Add(Info("b", 10), nullptr);
  Answer on_a;
  pool.Acquire("", on_a.Callback());
  ASSERT_EQ(on_a.backend(), "a");
  EXPECT_FALSE(pool.Drain("nope"));
  EXPECT_TRUE(pool.Drain("a"));
  EXPECT_EQ(pool.Stats().ready, 1u);
  EXPECT_EQ(pool.Stats().draining, 1u);
  EXPECT_EQ(pool.Stats().capacity, 10u);
  std::vector<Answer> more(3);
  for (Answer& m : more) {
    pool.Acquire("", m.Callback());
    EXPECT_EQ(m.backend(), "b");  // a has fewer in flight but is draining
  }
  Answer pinned;
  pool.Acquire("a", pinned.Callback());
  ASSERT_TRUE(pinned.called());
  EXPECT_EQ(pinned.outcome().http_status, 503);
  EXPECT_THAT(pinned.outcome().message, HasSubstr("draining"));
  EXPECT_TRUE(on_a.outcome().lease);  // still held, still counted
  EXPECT_EQ(InFlight(pool, "a"), 1u);

  // WaitIdle: false at the deadline while the lease is held...
  const absl::Time t0 = absl::Now();
  EXPECT_FALSE(pool.WaitIdle("a", t0 + absl::Milliseconds(100)));
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(100));
  EXPECT_LT(absl::Now() - t0, absl::Milliseconds(1000));
  // ...true as soon as the last one is released.
  std::atomic<bool> idle{false};
  absl::Time idle_at;
  std::thread waiter([&] {
    idle = pool.WaitIdle("a", absl::Now() + absl::Seconds(10));
    idle_at = absl::Now();
  });
  absl::SleepFor(absl::Milliseconds(50));
  const absl::Time released_at = absl::Now();
  on_a.Release();
  waiter.join();
  EXPECT_TRUE(idle);
  EXPECT_LT(idle_at - released_at, absl::Milliseconds(200));
  EXPECT_TRUE(pool.WaitIdle("a", absl::Now()));
  EXPECT_TRUE(pool.WaitIdle("unknown", absl::Now() + absl::Seconds(10)));

  // Re-added after Drain: takes requests again (it has the fewest in flight).
  pool.Add(Info("a", 10), nullptr);
  EXPECT_EQ(pool.Stats().draining, 0u);
  Answer back;
  pool.Acquire("", back.Callback());
  EXPECT_EQ(back.backend(), "a");
}

TEST(ServicePoolTest, DrainGrantsQueuedToOthersAndRemoveAnswersPinnedWaiters) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), nullptr);
  Answer ha, pinned, any;
  pool.Acquire("", ha.Callback());
  pool.Acquire("a", pinned.Callback());
  pool.Acquire("", any.Callback());
  EXPECT_EQ(pool.Stats().queued, 2u);
  pool.Add(Info("b", 1), nullptr);  // joins: the unpinned waiter fits at once
  ASSERT_TRUE(any.called());
  EXPECT_EQ(any.backend(), "b");
  pool.Remove("a");
  ASSERT_TRUE(pinned.called());
  EXPECT_EQ(pinned.outcome().http_status, 404);
  EXPECT_THAT(pinned.outcome().message, HasSubstr("instance a is no longer in service svc"));
}

TEST(ServicePoolTest, RemoveWithALeaseOutstanding) {
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 2), nullptr);
  Answer old_lease;
  pool.Acquire("", old_lease.Callback());
  ASSERT_TRUE(old_lease.outcome().lease);
  pool.Remove("a");
  EXPECT_TRUE(pool.Backends().empty());
  EXPECT_EQ(pool.Stats().in_flight, 0u);
  EXPECT_EQ(old_lease.outcome().lease.backend().instance_id, "a");  // info stays valid
  // Same id comes back: a fresh backend, not charged for the old lease.
  pool.Add(Info("a", 2), nullptr);
  Answer fresh;
  pool.Acquire("", fresh.Callback());
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  old_lease.Release();
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  fresh.Release();
  EXPECT_EQ(InFlight(pool, "a"), 0u);
  pool.Remove("a");
  pool.Remove("a");  // unknown: nothing
}

TEST(ServicePoolTest, DestroyedPoolAnswersWaitersAndLeasesReleaseSafely) {
  auto pool = std::make_unique<ServicePool>("svc", Options());
  pool->Add(Info("a", 1), nullptr);
  Answer held, waiting;
  pool->Acquire("", held.Callback());
  pool->Acquire("", waiting.Callback());
  pool.reset();
  ASSERT_TRUE(waiting.called());
  EXPECT_EQ(waiting.outcome().http_status, 503);
  EXPECT_THAT(waiting.outcome().message, HasSubstr("service svc deleted"));
  EXPECT_EQ(held.outcome().lease.backend().instance_id, "a");
  held.Release();  // must not touch the destroyed pool
}

TEST(ServicePoolTest, FailQueuedAnswersEveryWaiter) {
  ServicePool pool("svc", Options());  // no backend: everything queues (scale from zero)
  std::vector<Answer> waiting(3);
  for (Answer& w : waiting) EXPECT_NE(pool.Acquire("", w.Callback()), 0u);
  EXPECT_EQ(pool.Stats().queued, 3u);
  EXPECT_EQ(pool.Stats().capacity, 0u);
  EXPECT_EQ(pool.FailQueued(503, "cold start failed: boom"), 3u);
  for (Answer& w : waiting) {
    ASSERT_TRUE(w.called());
    EXPECT_EQ(w.outcome().http_status, 503);
    EXPECT_EQ(w.outcome().message, "cold start failed: boom");
    EXPECT_EQ(w.outcome().retry_after, absl::Seconds(3));
  }
  EXPECT_EQ(pool.FailQueued(503, "again"), 0u);
}

TEST(ServicePoolTest, DemandListenerRunsWithoutTheLockOnQueueChanges) {
  ServicePool pool("svc", Options());
  std::atomic<int> calls{0};
  std::vector<uint32_t> queued_seen;
  pool.SetDemandListener([&] {
    ++calls;
    queued_seen.push_back(pool.Stats().queued);  // would deadlock under the pool lock
  });
  Answer a, b, c;
  pool.Acquire("", a.Callback());  // no backend: queued (the activator would cold-start)
  EXPECT_EQ(calls, 1);
  pool.Acquire("", b.Callback());
  EXPECT_EQ(calls, 2);
  pool.Add(Info("x", 1), nullptr);  // a leaves the queue (granted)
  ASSERT_TRUE(a.called());
  EXPECT_EQ(calls, 3);
  const uint64_t tc = pool.Acquire("", c.Callback());
  EXPECT_EQ(calls, 4);
  pool.Cancel(tc);
  EXPECT_EQ(calls, 5);
  EXPECT_FALSE(pool.ExpireQueued(absl::InfiniteFuture()).has_value());  // b expires
  EXPECT_EQ(calls, 6);
  EXPECT_THAT(queued_seen, ElementsAre(1u, 2u, 1u, 2u, 1u, 0u));
  Answer d;
  a.Release();
  pool.Acquire("", d.Callback());  // granted at once: no demand change
  EXPECT_EQ(calls, 6);
}

TEST(ServicePoolTest, DoneMayReenterThePool) {
  ServicePool pool("svc", Options(2000));
  pool.Add(Info("a", 1), nullptr);
  Answer holder;
  pool.Acquire("", holder.Callback());
  // 1000 waiters whose `done` drops the lease at once: each release grants the next. The
  // grants run one after another on this thread, not nested 1000 deep.
  int served = 0;
  int depth = 0;
  int max_depth = 0;
  for (int i = 0; i < 1000; ++i) {
    pool.Acquire("", [&](RouteOutcome o) {
      max_depth = std::max(max_depth, ++depth);
      EXPECT_TRUE(o.lease);
      EXPECT_EQ(pool.Stats().in_flight, 1u);
      ++served;
      o.lease.Release();
      --depth;
    });
  }
  holder.Release();
  EXPECT_EQ(served, 1000);
  EXPECT_EQ(max_depth, 1);
  EXPECT_EQ(pool.Stats().in_flight, 0u);
  EXPECT_EQ(pool.Stats().queued, 0u);
}

TEST(ServicePoolTest, TryAcquireAnswersAtOnceOrLeavesTheRequestToAcquire) {
  ServicePool pool("svc", Options());
  int demand = 0;
  pool.SetDemandListener([&] { ++demand; });
  EXPECT_FALSE(pool.TryAcquire("").has_value());  // no backend: Acquire would queue
  pool.Add(Info("a", 1), nullptr);
  std::optional<RouteOutcome> first = pool.TryAcquire("");
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->lease);
  EXPECT_EQ(first->lease.backend().instance_id, "a");
  EXPECT_EQ(first->service, "svc");
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  EXPECT_EQ(pool.Stats().granted, 1u);
  // Full: nothing is queued or announced; Acquire queues it, and the release grants it.
  EXPECT_FALSE(pool.TryAcquire("").has_value());
  EXPECT_FALSE(pool.TryAcquire("a").has_value());
  EXPECT_EQ(pool.Stats().queued, 0u);
  EXPECT_EQ(demand, 0);
  Answer waiter;
  EXPECT_NE(pool.Acquire("", waiter.Callback()), 0u);
  EXPECT_EQ(demand, 1);
  first->lease.Release();
  ASSERT_TRUE(waiter.called());
  EXPECT_EQ(waiter.backend(), "a");
  waiter.Release();
  EXPECT_EQ(InFlight(pool, "a"), 0u);
  // Answers that need no waiting come back as they would from Acquire.
  std::optional<RouteOutcome> unknown = pool.TryAcquire("nope");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_FALSE(unknown->lease);
  EXPECT_EQ(unknown->http_status, 404);
  EXPECT_EQ(unknown->message, "no instance nope in service svc");
  ASSERT_TRUE(pool.Drain("a"));
  EXPECT_FALSE(pool.TryAcquire("").has_value());  // draining: no room, would queue
  std::optional<RouteOutcome> draining = pool.TryAcquire("a");
  ASSERT_TRUE(draining.has_value());
  EXPECT_EQ(draining->http_status, 503);
  EXPECT_EQ(draining->message, "instance a of service svc is draining");
  EXPECT_EQ(draining->retry_after, absl::Seconds(3));
  EXPECT_EQ(pool.Stats().granted, 2u);
}

TEST(ServicePoolTest, TryAcquireInsideTheGatesCallbackLeavesItToAcquire) {
  // Work a callback causes runs after it returns, in order; a lease taken in the middle of
  // that would skip ahead, so TryAcquire declines there even with room.
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 2), nullptr);
  bool inside_declined = false;
  Answer outer;
  auto cb = outer.Callback();
  pool.Acquire("", [&](RouteOutcome o) {
    inside_declined = !pool.TryAcquire("").has_value();
    cb(std::move(o));
  });
  ASSERT_TRUE(outer.called());
  EXPECT_TRUE(inside_declined);
  EXPECT_EQ(InFlight(pool, "a"), 1u);
  std::optional<RouteOutcome> after = pool.TryAcquire("");  // outside: granted
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(after->lease);
  EXPECT_EQ(InFlight(pool, "a"), 2u);
}

TEST(ServicePoolTest, StatsAndLastActive) {
  ServicePool pool("svc", Options());
  const absl::Time created = pool.Stats().last_active;
  EXPECT_LE(created, absl::Now());
  pool.Add(Info("a", 3), nullptr);
  pool.Add(Info("b", 4), nullptr);
  absl::SleepFor(absl::Milliseconds(5));
  Answer x;
  pool.Acquire("", x.Callback());
  const absl::Time granted = pool.Stats().last_active;
  EXPECT_GT(granted, created);
  absl::SleepFor(absl::Milliseconds(5));
  x.Release();
  const PoolStats s = pool.Stats();
  EXPECT_GT(s.last_active, granted);
  EXPECT_EQ(s.ready, 2u);
  EXPECT_EQ(s.capacity, 7u);
  EXPECT_EQ(s.granted, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  std::vector<BackendStats> bs = pool.Backends();
  ASSERT_EQ(bs.size(), 2u);
  EXPECT_EQ(bs[0].instance_id, "a");
  EXPECT_EQ(bs[0].concurrency, 3u);
  EXPECT_EQ(bs[1].instance_id, "b");
}

// ---------------------------------------------------------------------------------------
// CpuThrottle around a lease

class FakeQuota : public QuotaSink {
 public:
  struct Shared {
    absl::Mutex mu;
    std::vector<uint64_t> writes ABSL_GUARDED_BY(mu);
    std::atomic<uint64_t> current{0};
    std::atomic<int> fail_next{0};
    std::vector<uint64_t> Writes() {
      absl::MutexLock l(&mu);
      return writes;
    }
  };
  explicit FakeQuota(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  absl::Status Set(uint64_t quota_us) override {
    if (s_->fail_next.load() > 0) {
      s_->fail_next.fetch_sub(1);
      return absl::PermissionDeniedError("write(cpu.cfs_quota_us): EACCES (fake)");
    }
    absl::MutexLock l(&s_->mu);
    s_->writes.push_back(quota_us);
    s_->current = quota_us;
    return absl::OkStatus();
  }
  uint64_t period_us() const override { return 100000; }

 private:
  std::shared_ptr<Shared> s_;
};

std::shared_ptr<CpuThrottle> MakeThrottle(std::shared_ptr<FakeQuota::Shared> q) {
  CpuThrottleOptions o;
  o.vcpus_milli = 1000;  // full 100000 µs, floor 1000 µs
  auto t = CpuThrottle::Create(std::make_unique<FakeQuota>(std::move(q)), o);
  EXPECT_TRUE(t.ok()) << t.status();
  std::shared_ptr<CpuThrottle> throttle = std::move(*t);
  EXPECT_TRUE(throttle->Ready().ok());  // idle REQUEST instance: at the floor
  return throttle;
}

TEST(ServicePoolThrottleTest, FullQuotaBeforeTheLeaseFloorAfterTheLastRelease) {
  auto q = std::make_shared<FakeQuota::Shared>();
  std::shared_ptr<CpuThrottle> throttle = MakeThrottle(q);
  ASSERT_EQ(q->current, 1000u);
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 2), throttle);
  std::vector<uint64_t> quota_at_delivery;
  auto record = [&](Answer& a) {
    return [&q, &quota_at_delivery, cb = a.Callback()](RouteOutcome o) mutable {
      quota_at_delivery.push_back(q->current);
      cb(std::move(o));
    };
  };
  Answer first, second, third;
  pool.Acquire("", record(first));
  pool.Acquire("", record(second));
  pool.Acquire("", record(third));  // queued (concurrency 2)
  EXPECT_THAT(quota_at_delivery, ElementsAre(100000u, 100000u));
  EXPECT_EQ(throttle->stats().in_flight, 2u);
  first.Release();  // hands the slot straight to `third`: no floor in between
  EXPECT_THAT(quota_at_delivery, ElementsAre(100000u, 100000u, 100000u));
  EXPECT_THAT(q->Writes(), ElementsAre(100000u, 1000u, 100000u));
  second.Release();
  EXPECT_EQ(q->current, 100000u);  // third still in flight
  third.Release();
  EXPECT_EQ(q->current, 1000u);
  EXPECT_THAT(q->Writes(), ElementsAre(100000u, 1000u, 100000u, 1000u));
  EXPECT_EQ(throttle->stats().in_flight, 0u);
  EXPECT_EQ(throttle->stats().became_busy, 1u);
  EXPECT_EQ(throttle->stats().became_idle, 1u);
}

TEST(ServicePoolThrottleTest, RefusedUnthrottleAnswers503AndGivesTheSlotBack) {
  auto q = std::make_shared<FakeQuota::Shared>();
  std::shared_ptr<CpuThrottle> throttle = MakeThrottle(q);
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), throttle);
  q->fail_next = 1;
  Answer refused;
  pool.Acquire("", refused.Callback());
  ASSERT_TRUE(refused.called());
  EXPECT_FALSE(refused.outcome().lease);
  EXPECT_EQ(refused.outcome().http_status, 503);
  EXPECT_THAT(refused.outcome().message, HasSubstr("cpu throttle: "));
  EXPECT_THAT(refused.outcome().message, HasSubstr("EACCES"));
  EXPECT_EQ(refused.outcome().retry_after, absl::Seconds(3));
  EXPECT_EQ(InFlight(pool, "a"), 0u);
  EXPECT_EQ(throttle->stats().in_flight, 0u);
  EXPECT_EQ(pool.Stats().granted, 0u);
  Answer ok;
  pool.Acquire("", ok.Callback());
  ASSERT_TRUE(ok.outcome().lease);
  EXPECT_EQ(q->current, 100000u);
  ok.Release();
  EXPECT_EQ(q->current, 1000u);
}

TEST(ServicePoolThrottleTest, TryAcquireRaisesTheQuotaBeforeReturningTheLease) {
  auto q = std::make_shared<FakeQuota::Shared>();
  std::shared_ptr<CpuThrottle> throttle = MakeThrottle(q);
  ServicePool pool("svc", Options());
  pool.Add(Info("a", 1), throttle);
  std::optional<RouteOutcome> got = pool.TryAcquire("");
  ASSERT_TRUE(got.has_value() && got->lease);
  EXPECT_EQ(q->current, 100000u);
  EXPECT_EQ(throttle->stats().in_flight, 1u);
  got->lease.Release();
  EXPECT_EQ(q->current, 1000u);
  q->fail_next = 1;  // the unthrottle fails: 503, and the slot is given back
  std::optional<RouteOutcome> refused = pool.TryAcquire("");
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->lease);
  EXPECT_EQ(refused->http_status, 503);
  EXPECT_THAT(refused->message, HasSubstr("cpu throttle: "));
  EXPECT_EQ(refused->retry_after, absl::Seconds(3));
  EXPECT_EQ(InFlight(pool, "a"), 0u);
  EXPECT_EQ(throttle->stats().in_flight, 0u);
}

TEST(ServicePoolThrottleTest, LeaseOutlivingThePoolStillThrottles) {
  auto q = std::make_shared<FakeQuota::Shared>();
  std::shared_ptr<CpuThrottle> throttle = MakeThrottle(q);
  Answer held;
  {
    ServicePool pool("svc", Options());
    pool.Add(Info("a", 1), throttle);
    pool.Acquire("", held.Callback());
    ASSERT_TRUE(held.outcome().lease);
    pool.Remove("a");
  }
  EXPECT_EQ(q->current, 100000u);
  held.Release();
  EXPECT_EQ(q->current, 1000u);
  EXPECT_EQ(throttle->stats().in_flight, 0u);
}

TEST(ServiceRouterThrottleTest, AnticipateRaisesTheLikelyInstanceUntilTheLeaseTakesOver) {
  ServiceRouter router("skiff.local");
  auto qa = std::make_shared<FakeQuota::Shared>();
  auto qb = std::make_shared<FakeQuota::Shared>();
  std::shared_ptr<CpuThrottle> ta = MakeThrottle(qa);
  std::shared_ptr<CpuThrottle> tb = MakeThrottle(qb);
  std::shared_ptr<ServicePool> pool = router.PutService("svc", Options());
  pool->Add(Info("a", 1), ta);
  pool->Add(Info("b", 1), tb);
  ASSERT_EQ(qa->current, 1000u);

  // The hint raises the instance a request would get ("a": fewest in flight, added first)
  // before any request is routed; nothing is taken from the pool.
  CpuHold hold = router.Anticipate("svc.skiff.local:8080");
  ASSERT_TRUE(hold);
  EXPECT_EQ(qa->current, 100000u);
  EXPECT_EQ(qb->current, 1000u);
  EXPECT_EQ(InFlight(*pool, "a"), 0u);
  // The request is routed there: the lease keeps the CPU up once the hold is dropped.
  Answer got;
  router.Route(RouteRequest{"svc", ""}, got.Callback());
  ASSERT_TRUE(got.outcome().lease);
  EXPECT_EQ(got.outcome().lease.backend().instance_id, "a");
  hold.Release();
  EXPECT_EQ(qa->current, 100000u);
  got.Release();
  EXPECT_EQ(qa->current, 1000u);
  EXPECT_THAT(qa->Writes(), ElementsAre(100000u, 1000u, 100000u, 1000u));  // one raise, one drop
  EXPECT_EQ(ta->stats().in_flight, 0u);

  // A wrong guess (the request is pinned elsewhere) just falls back to the floor.
  hold = router.Anticipate("svc");
  EXPECT_EQ(qa->current, 100000u);
  Answer pinned;
  router.Route(RouteRequest{"svc", "b"}, pinned.Callback());
  ASSERT_TRUE(pinned.outcome().lease);
  hold.Release();
  EXPECT_EQ(qa->current, 1000u);
  EXPECT_EQ(qb->current, 100000u);
  pinned.Release();
  EXPECT_EQ(qb->current, 1000u);

  // Nothing to raise: unknown service, another domain, a malformed host, no room, no
  // throttle.
  EXPECT_FALSE(router.Anticipate("nope"));
  EXPECT_FALSE(router.Anticipate("svc.example.com"));
  EXPECT_FALSE(router.Anticipate("bad host!"));
  Answer busy_a, busy_b;
  router.Route(RouteRequest{"svc", ""}, busy_a.Callback());
  router.Route(RouteRequest{"svc", ""}, busy_b.Callback());
  EXPECT_FALSE(router.Anticipate("svc"));  // both at concurrency 1
  busy_a.Release();
  busy_b.Release();
  router.PutService("plain", Options())->Add(Info("p", 1), nullptr);
  EXPECT_FALSE(router.Anticipate("plain"));
  EXPECT_EQ(qa->current, 1000u);
  EXPECT_EQ(qb->current, 1000u);
}

// ---------------------------------------------------------------------------------------
// ServiceRouter

TEST(ServiceRouterTest, RoutesByHostAndAnswers404And400) {
  ServiceRouter router("skiff.local");
  EXPECT_EQ(router.node_domain(), "skiff.local");
  std::shared_ptr<ServicePool> hello = router.PutService("hello", Options());
  std::shared_ptr<ServicePool> echo = router.PutService("echo", Options());
  hello->Add(Info("hello-aaaaa", 5), nullptr);
  echo->Add(Info("echo-bbbbb", 5), nullptr);
  EXPECT_EQ(router.Find("hello"), hello);
  EXPECT_EQ(router.Find("nope"), nullptr);
  ASSERT_EQ(router.Pools().size(), 2u);
  EXPECT_EQ(router.Pools()[0]->service(), "echo");           // sorted by name
  EXPECT_EQ(router.PutService("hello", Options(7)), hello);  // update, same pool

  struct Case {
    std::string host;
    std::string pin;
    int status;  // 0: lease
    std::string backend_or_message;
    std::string service;
  };
  for (const Case& c : std::vector<Case>{
           {"hello.skiff.local", "", 0, "hello-aaaaa", "hello"},
           {"ECHO.skiff.local:8080", "", 0, "echo-bbbbb", "echo"},
           {"echo", "", 0, "echo-bbbbb", "echo"},
           {"echo", "echo-bbbbb", 0, "echo-bbbbb", "echo"},
           {"echo", "hello-aaaaa", 404, "no instance hello-aaaaa in service echo", "echo"},
           {"nope.skiff.local", "", 404, "no service nope on this node", ""},
           {"nope.example.com", "", 404, "no service on this node: Host nope.example.com", ""},
           {"127.0.0.1:8080", "", 404, "no service on this node", ""},
           {"[::1]:8080", "", 404, "IP literal", ""},
           {"", "", 400, "Host: empty", ""},
           {"he llo", "", 400, "not a host name", ""},
           {"hello:99999", "", 400, "bad port", ""},
           {"bad_name", "", 400, "bad_name", ""},
       }) {
    Answer a;
    EXPECT_EQ(router.Route(RouteRequest{c.host, c.pin}, a.Callback()), 0u) << c.host;
    ASSERT_TRUE(a.called()) << c.host;
    EXPECT_EQ(a.outcome().service, c.service) << c.host;
    if (c.status == 0) {
      EXPECT_EQ(a.backend(), c.backend_or_message) << c.host;
    } else {
      EXPECT_FALSE(a.outcome().lease) << c.host;
      EXPECT_EQ(a.outcome().http_status, c.status) << c.host;
      EXPECT_THAT(a.outcome().message, HasSubstr(c.backend_or_message)) << c.host;
    }
    // TryRoute: the same answer at once (every case here needs no waiting).
    std::optional<RouteOutcome> now = router.TryRoute(RouteRequest{c.host, c.pin});
    ASSERT_TRUE(now.has_value()) << c.host;
    EXPECT_EQ(now->service, c.service) << c.host;
    if (c.status == 0) {
      ASSERT_TRUE(now->lease) << c.host;
      EXPECT_EQ(now->lease.backend().instance_id, c.backend_or_message) << c.host;
    } else {
      EXPECT_FALSE(now->lease) << c.host;
      EXPECT_EQ(now->http_status, c.status) << c.host;
      EXPECT_THAT(now->message, HasSubstr(c.backend_or_message)) << c.host;
    }
  }
  EXPECT_EQ(hello->Stats().in_flight, 0u);  // every lease above was dropped
  // A service with no room: TryRoute leaves the request to Route, which queues it.
  std::shared_ptr<ServicePool> busy = router.PutService("busy", Options());
  EXPECT_FALSE(router.TryRoute(RouteRequest{"busy.skiff.local", ""}).has_value());
  EXPECT_EQ(busy->Stats().queued, 0u);
  Answer queued;
  const uint64_t ticket = router.Route(RouteRequest{"busy", ""}, queued.Callback());
  EXPECT_NE(ticket, 0u);
  EXPECT_EQ(busy->Stats().queued, 1u);
  router.Cancel(ticket);
  ASSERT_TRUE(queued.called());
  EXPECT_EQ(queued.outcome().http_status, 503);
}

TEST(ServiceRouterTest, TicketsAreUniqueAcrossPoolsAndCancelReachesTheRightOne) {
  ServiceRouter router("skiff.local");
  auto a = router.PutService("a", Options());
  auto b = router.PutService("b", Options());
  // No backends: requests queue.
  Answer wa, wb;
  const uint64_t ta = router.Route({"a", ""}, wa.Callback());
  const uint64_t tb = router.Route({"b", ""}, wb.Callback());
  ASSERT_NE(ta, 0u);
  ASSERT_NE(tb, 0u);
  EXPECT_NE(ta, tb);
  router.Cancel(tb);
  ASSERT_TRUE(wb.called());
  EXPECT_EQ(wb.outcome().http_status, 503);
  EXPECT_EQ(wb.outcome().service, "b");
  EXPECT_FALSE(wa.called());
  EXPECT_EQ(a->Stats().queued, 1u);
  // Granted, then cancelled: no effect.
  a->Add(Info("a-1", 1), nullptr);
  ASSERT_TRUE(wa.called());
  ASSERT_TRUE(wa.outcome().lease);
  router.Cancel(ta);
  EXPECT_EQ(wa.calls(), 1);
  EXPECT_EQ(a->Stats().in_flight, 1u);
}

TEST(ServiceRouterTest, DeleteServiceAnswersWaitersAndForgetsIt) {
  ServiceRouter router("skiff.local");
  auto pool = router.PutService("gone", Options());
  Answer waiting;
  router.Route({"gone", ""}, waiting.Callback());
  EXPECT_FALSE(waiting.called());
  EXPECT_TRUE(router.DeleteService("gone"));
  EXPECT_FALSE(router.DeleteService("gone"));
  ASSERT_TRUE(waiting.called());
  EXPECT_EQ(waiting.outcome().http_status, 503);
  EXPECT_THAT(waiting.outcome().message, HasSubstr("service gone deleted"));
  Answer after;
  router.Route({"gone", ""}, after.Callback());
  EXPECT_EQ(after.outcome().http_status, 404);
  // Someone still holding the deleted pool cannot queue into it.
  Answer late;
  pool->Acquire("", late.Callback());
  ASSERT_TRUE(late.called());
  EXPECT_EQ(late.outcome().http_status, 503);
}

// The reaper answers a queued request within ~50 ms of its deadline, sleeping until the
// earliest deadline and waking early when a request with an earlier one arrives.
TEST(ServiceRouterTest, ReaperExpiresQueuedRequestsAtTheirDeadline) {
  ServiceRouter router("skiff.local");
  auto slow = router.PutService("slow", Options(100, absl::Seconds(5)));
  auto fast = router.PutService("fast", Options(100, absl::Milliseconds(300)));
  slow->Add(Info("s", 1), nullptr);
  fast->Add(Info("f", 1), nullptr);
  Answer hold_s, hold_f, in_slow, fast1, fast2;
  router.Route({"slow", ""}, hold_s.Callback());
  router.Route({"fast", ""}, hold_f.Callback());
  ASSERT_TRUE(hold_s.outcome().lease);
  ASSERT_TRUE(hold_f.outcome().lease);

  ASSERT_NE(router.Route({"slow", ""}, in_slow.Callback()), 0u);  // reaper sleeps 5 s...
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Time t1 = absl::Now();
  ASSERT_NE(router.Route({"fast", ""}, fast1.Callback()), 0u);  // ...woken for 300 ms
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time t2 = absl::Now();
  ASSERT_NE(router.Route({"fast", ""}, fast2.Callback()), 0u);

  ASSERT_TRUE(fast1.WaitCalled(absl::Seconds(3)));
  ASSERT_TRUE(fast2.WaitCalled(absl::Seconds(3)));
  const absl::Duration late1 = fast1.at() - (t1 + absl::Milliseconds(300));
  const absl::Duration late2 = fast2.at() - (t2 + absl::Milliseconds(300));
  EXPECT_GE(late1, absl::ZeroDuration());
  EXPECT_LE(late1, absl::Milliseconds(50));
  EXPECT_GE(late2, absl::ZeroDuration());
  EXPECT_LE(late2, absl::Milliseconds(50));
  for (Answer* a : {&fast1, &fast2}) {
    EXPECT_EQ(a->outcome().http_status, 503);
    EXPECT_EQ(a->outcome().retry_after, absl::Seconds(3));
    EXPECT_EQ(a->outcome().service, "fast");
    EXPECT_THAT(a->outcome().message, HasSubstr("waited 300ms in the queue of service fast"));
  }
  EXPECT_EQ(fast->Stats().expired_in_queue, 2u);
  EXPECT_FALSE(in_slow.called());  // its deadline is seconds away
  EXPECT_EQ(slow->Stats().queued, 1u);
}

TEST(ServiceRouterTest, DestructionAnswersQueuedRequests) {
  Answer waiting;
  std::shared_ptr<ServicePool> kept;
  {
    ServiceRouter router("skiff.local");
    kept = router.PutService("svc", Options());
    router.Route({"svc", ""}, waiting.Callback());
    EXPECT_FALSE(waiting.called());
  }
  ASSERT_TRUE(waiting.called());
  EXPECT_EQ(waiting.outcome().http_status, 503);
  EXPECT_THAT(waiting.outcome().message, HasSubstr("stopping"));
}

// ---------------------------------------------------------------------------------------
// Stress: 8 threads × 20k acquire/release over 3 backends of concurrency 4.

TEST(ServicePoolStressTest, ManyThreadsNeverExceedTheLimit) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  constexpr int kTotal = kThreads * kPerThread;
  ServicePool pool("svc", Options(/*max_queue=*/kTotal, absl::Seconds(60)));
  std::vector<std::shared_ptr<FakeQuota::Shared>> quotas;
  std::vector<std::shared_ptr<CpuThrottle>> throttles;
  for (const char* id : {"a", "b", "c"}) {
    quotas.push_back(std::make_shared<FakeQuota::Shared>());
    throttles.push_back(MakeThrottle(quotas.back()));
    pool.Add(Info(id, 4), throttles.back());
  }
  std::atomic<int> live[3] = {0, 0, 0};
  std::atomic<int> max_live{0};
  std::atomic<int> errors{0};
  std::vector<std::atomic<uint8_t>> calls(kTotal);
  absl::Mutex done_mu;
  int completed ABSL_GUARDED_BY(done_mu) = 0;

  auto on_lease = [&](int id, RouteOutcome& o) {
    calls[id].fetch_add(1);
    if (!o.lease) {
      ++errors;
      return -1;
    }
    const int b = o.lease.backend().instance_id[0] - 'a';
    const int n = ++live[b];
    int m = max_live.load();
    while (n > m && !max_live.compare_exchange_weak(m, n)) {
    }
    return b;
  };
  auto finish = [&]() {
    absl::MutexLock l(&done_mu);
    ++completed;
  };

  // A request whose lease comes back to the acquiring thread.
  struct HandBack {
    absl::Mutex mu;
    std::optional<RouteOutcome> got ABSL_GUARDED_BY(mu);
    void Wait() {
      absl::MutexLock l(&mu);
      mu.Await(absl::Condition(
          +[](std::optional<RouteOutcome>* g) { return g->has_value(); }, &got));
    }
  };
  std::atomic<int> queued{0};
  // The queue depth, as the demand listener sees it.
  absl::Mutex depth_mu;
  uint32_t depth ABSL_GUARDED_BY(depth_mu) = 0;
  pool.SetDemandListener([&] {
    const uint32_t queued_now = pool.Stats().queued;
    absl::MutexLock l(&depth_mu);
    depth = queued_now;
  });
  // Every slot taken before the threads start: their first requests must queue.
  std::vector<Answer> prefill(12);
  for (Answer& a : prefill) {
    pool.Acquire("", a.Callback());
    ASSERT_TRUE(a.outcome().lease);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Pairs of requests: the first released inside `done` (on whichever thread grants it)
      // or handed back, the second always handed back; the thread holds up to two leases, so
      // 8 threads want up to 16 slots of 12 and requests queue (never all blocked: 8 held
      // leave 4 free).
      for (int i = 0; i < kPerThread; i += 2) {
        HandBack h[2];
        auto hand_back = [&](int id, HandBack* hb) {
          return [&, id, hb](RouteOutcome o) {
            on_lease(id, o);
            absl::MutexLock l(&hb->mu);
            hb->got = std::move(o);
          };
        };
        const int id0 = t * kPerThread + i;
        const bool inline0 = (i / 2) % 2 == 0;
        uint64_t ticket;
        if (inline0) {
          ticket = pool.Acquire("", [&, id0](RouteOutcome o) {
            const int b = on_lease(id0, o);
            if (b >= 0) --live[b];
            o.lease.Release();
            finish();
          });
        } else {
          ticket = pool.Acquire("", hand_back(id0, &h[0]));
        }
        queued += ticket != 0;
        queued += pool.Acquire("", hand_back(id0 + 1, &h[1])) != 0;
        // "Serve" a moment with the leases held, so threads are preempted holding them.
        const absl::Time until = absl::Now() + absl::Microseconds(2);
        while (absl::Now() < until) {
        }
        for (int k = inline0 ? 1 : 0; k < 2; ++k) {
          h[k].Wait();
          absl::MutexLock l(&h[k].mu);
          if (h[k].got->lease) --live[h[k].got->lease.backend().instance_id[0] - 'a'];
          h[k].got->lease.Release();
          finish();
        }
      }
    });
  }
  {
    absl::MutexLock l(&depth_mu);
    auto all_waiting = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(depth_mu) {
      return depth >= static_cast<uint32_t>(kThreads);
    };
    EXPECT_TRUE(depth_mu.AwaitWithTimeout(absl::Condition(&all_waiting), absl::Seconds(10)));
  }
  EXPECT_GE(pool.Stats().queued, static_cast<uint32_t>(kThreads));
  for (Answer& a : prefill) a.Release();
  for (auto& th : threads) th.join();
  {
    absl::MutexLock l(&done_mu);
    auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(done_mu) { return completed == kTotal; };
    ASSERT_TRUE(done_mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(30)))
        << completed << " of " << kTotal;
  }
  EXPECT_EQ(errors, 0);
  EXPECT_LE(max_live, 4);
  EXPECT_GE(max_live, 3);
  EXPECT_GE(queued, kThreads);
  std::printf("stress: %d requests, %d queued, max %d in flight on one backend\n", kTotal,
              queued.load(), max_live.load());
  int not_once = 0;
  for (auto& c : calls) not_once += c.load() != 1;
  EXPECT_EQ(not_once, 0);
  const PoolStats s = pool.Stats();
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.granted, static_cast<uint64_t>(kTotal) + prefill.size());
  for (const BackendStats& b : pool.Backends()) EXPECT_EQ(b.in_flight, 0u) << b.instance_id;
  for (size_t i = 0; i < throttles.size(); ++i) {
    const CpuThrottle::Stats ts = throttles[i]->stats();
    EXPECT_EQ(ts.in_flight, 0u);
    EXPECT_EQ(ts.became_busy, ts.became_idle);
    EXPECT_EQ(quotas[i]->current, 1000u);  // every backend back at the floor
  }
}

}  // namespace
}  // namespace skiff::ingress
