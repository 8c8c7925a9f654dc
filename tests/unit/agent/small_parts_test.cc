// Label selectors, the IP pool, the event bus, the CRI log format and the state machine.

#include <thread>

#include "agent/instances/console_log_reader.h"
#include "agent/instances/cri_log.h"
#include "agent/instances/event_bus.h"
#include "agent/instances/instance_state.h"
#include "agent/instances/ip_pool.h"
#include "agent/instances/label_selector.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

google::protobuf::Map<std::string, std::string> Labels(
    std::initializer_list<std::pair<const std::string, std::string>> kv) {
  google::protobuf::Map<std::string, std::string> m;
  for (const auto& [k, v] : kv) m[k] = v;
  return m;
}

TEST(LabelSelectorTest, Operators) {
  const auto labels = Labels({{"service", "hello"}, {"rev", "2"}});
  auto match = [&](const std::string& sel) {
    auto s = LabelSelector::Parse(sel);
    EXPECT_THAT(s, IsOk()) << sel;
    return s.ok() && s->Matches(labels);
  };
  EXPECT_TRUE(match(""));
  EXPECT_TRUE(match("service=hello"));
  EXPECT_TRUE(match("service==hello"));
  EXPECT_FALSE(match("service=other"));
  EXPECT_TRUE(match("service!=other"));
  EXPECT_FALSE(match("service!=hello"));
  EXPECT_TRUE(match("absent!=x"));
  EXPECT_TRUE(match("rev"));
  EXPECT_FALSE(match("absent"));
  EXPECT_TRUE(match("!absent"));
  EXPECT_FALSE(match("!rev"));
  EXPECT_TRUE(match("service=hello, rev=2, !absent"));
  EXPECT_FALSE(match("service=hello,rev=3"));
  EXPECT_FALSE(match("service="));  // valid: an empty value, which "hello" is not
}

TEST(LabelSelectorTest, BadSelectorsNameTheField) {
  for (const std::string bad : {"a=b,,c", "=x", "!", "a=b=c", "-bad=1", "a!=b!=c"}) {
    EXPECT_THAT(LabelSelector::Parse(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("label_selector: ")))
        << bad;
  }
}

TEST(IpPoolTest, PairsAreEvenHostOddInstance) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto pool, IpPool::Create("10.88.0.0/16"));
  EXPECT_EQ(pool->capacity(), 32768u - 2);
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair a, pool->Allocate());
  EXPECT_EQ(a.host_ip, "10.88.0.2");
  EXPECT_EQ(a.instance_ip, "10.88.0.3");
  EXPECT_EQ(a.prefix_len, 31u);
  EXPECT_EQ(a.host_veth, "sk-0a580002");
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair b, pool->Allocate());
  EXPECT_EQ(b.host_ip, "10.88.0.4");
  EXPECT_EQ(pool->in_use(), 2u);
}

TEST(IpPoolTest, ExhaustionReleaseAndNextFit) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto pool, IpPool::Create("192.168.7.0/29"));  // 4 pairs, 2 usable
  EXPECT_EQ(pool->capacity(), 2u);
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair a, pool->Allocate());
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair b, pool->Allocate());
  EXPECT_EQ(a.host_ip, "192.168.7.2");
  EXPECT_EQ(b.host_ip, "192.168.7.4");
  EXPECT_THAT(pool->Allocate(), StatusIs(absl::StatusCode::kResourceExhausted,
                                         HasSubstr("all 2 address pairs in use")));
  pool->Release(a.host_ip);
  pool->Release(a.host_ip);  // idempotent
  EXPECT_EQ(pool->in_use(), 1u);
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair c, pool->Allocate());
  EXPECT_EQ(c.host_ip, "192.168.7.2");
  // Next-fit: with everything free, a just-released pair is not handed out first.
  pool->Release(b.host_ip);
  pool->Release(c.host_ip);
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair d, pool->Allocate());
  EXPECT_EQ(d.host_ip, "192.168.7.4");
}

TEST(IpPoolTest, RecoveryReserve) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto pool, IpPool::Create("10.0.0.0/28"));
  SKIFF_EXPECT_OK(pool->Reserve("10.0.0.2"));
  SKIFF_EXPECT_OK(pool->Reserve("10.0.0.6"));
  EXPECT_THAT(pool->Reserve("10.0.0.2"), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(pool->Reserve("10.0.0.3"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a host (even) end")));
  EXPECT_THAT(pool->Reserve("10.0.1.2"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside the pool")));
  EXPECT_THAT(pool->Reserve("10.0.0.0"), StatusIs(absl::StatusCode::kInvalidArgument));
  // Allocation skips the reserved pairs.
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair a, pool->Allocate());
  EXPECT_EQ(a.host_ip, "10.0.0.4");
  SKIFF_ASSERT_OK_AND_ASSIGN(IpPair b, pool->Allocate());
  EXPECT_EQ(b.host_ip, "10.0.0.8");
}

TEST(IpPoolTest, BadCidrsNameTheFlag) {
  for (const std::string bad : {"10.88.0.0", "10.88.0.1/16", "10.88.0.0/31", "10.88.0.0/4",
                                "300.1.1.1/16", "10.88.0.0/x", "10.88.0.0/"}) {
    EXPECT_THAT(IpPool::Create(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("ip_pool: ")))
        << bad;
  }
}

v1::Event Ev(const std::string& id, v1::Event::Type t) {
  v1::Event e;
  e.set_instance_id(id);
  e.set_type(t);
  return e;
}

TEST(EventBusTest, OrderedPerSubscriberNoLossUnderConcurrency) {
  EventBus bus;
  auto all = bus.Subscribe("");
  auto only_b = bus.Subscribe("b");
  constexpr int kPerThread = 2000;
  std::vector<std::thread> publishers;
  for (const char* id : {"a", "b", "c"}) {
    publishers.emplace_back([&bus, id] {
      for (int i = 0; i < kPerThread; ++i) bus.Publish(Ev(id, v1::Event::STARTED));
    });
  }
  for (auto& t : publishers) t.join();
  uint64_t last = 0;
  int count = 0;
  for (;;) {
    SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<v1::Event> e, all->Next(absl::ZeroDuration()));
    if (!e.has_value()) break;
    EXPECT_EQ(e->sequence(), last + 1);  // no gap, no reordering
    last = e->sequence();
    EXPECT_TRUE(e->has_time());
    ++count;
  }
  EXPECT_EQ(count, 3 * kPerThread);
  int b_count = 0;
  uint64_t b_last = 0;
  for (;;) {
    SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<v1::Event> e, only_b->Next(absl::ZeroDuration()));
    if (!e.has_value()) break;
    EXPECT_EQ(e->instance_id(), "b");
    EXPECT_GT(e->sequence(), b_last);
    b_last = e->sequence();
    ++b_count;
  }
  EXPECT_EQ(b_count, kPerThread);
  EXPECT_EQ(bus.last_sequence(), 3u * kPerThread);
}

TEST(EventBusTest, SeesOnlyLaterEventsAndBlocksUntilOne) {
  EventBus bus;
  bus.Publish(Ev("a", v1::Event::CREATED));
  auto sub = bus.Subscribe("");
  std::thread later([&] {
    absl::SleepFor(absl::Milliseconds(50));
    bus.Publish(Ev("a", v1::Event::STARTED));
  });
  SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<v1::Event> e, sub->Next(absl::Seconds(5)));
  later.join();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type(), v1::Event::STARTED);
  EXPECT_EQ(e->sequence(), 2u);
}

TEST(EventBusTest, OverflowIsAnErrorNotASilentGap) {
  EventBus bus(/*max_queue=*/3);
  auto sub = bus.Subscribe("");
  for (int i = 0; i < 5; ++i) bus.Publish(Ev("a", v1::Event::STARTED));
  for (int i = 0; i < 3; ++i) {
    SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<v1::Event> e, sub->Next(absl::ZeroDuration()));
    ASSERT_TRUE(e.has_value());
  }
  EXPECT_THAT(sub->Next(absl::ZeroDuration()), StatusIs(absl::StatusCode::kResourceExhausted));
  bus.CloseAll();
  auto closed = bus.Subscribe("");
  closed->Close();
  EXPECT_THAT(closed->Next(absl::Seconds(1)), StatusIs(absl::StatusCode::kCancelled));
}

TEST(CriLogTest, ParsesRecords) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      CriRecord r, ParseCriRecord("2026-11-23T04:10:15.123456789Z stdout F hello world\n"));
  EXPECT_FALSE(r.is_stderr);
  EXPECT_FALSE(r.partial);
  EXPECT_EQ(r.line, "hello world");
  EXPECT_EQ(absl::ToUnixNanos(r.time) % 1000000000, 123456789);
  SKIFF_ASSERT_OK_AND_ASSIGN(r, ParseCriRecord("2026-11-23T04:10:15Z stderr P part"));
  EXPECT_TRUE(r.is_stderr);
  EXPECT_TRUE(r.partial);
  EXPECT_EQ(r.line, "part");
  SKIFF_ASSERT_OK_AND_ASSIGN(r, ParseCriRecord("2026-11-23T04:10:15Z stdout F "));
  EXPECT_EQ(r.line, "");
  SKIFF_ASSERT_OK_AND_ASSIGN(r, ParseCriRecord("2026-11-23T04:10:15Z stdout F  two  spaces "));
  EXPECT_EQ(r.line, " two  spaces ");
}

TEST(CriLogTest, RejectsMalformed) {
  for (const std::string bad :
       {"", "garbage", "notatime stdout F x", "2026-11-23T04:10:15Z stdin F x",
        "2026-11-23T04:10:15Z stdout X x", "2026-11-23T04:10:15Z stdout"}) {
    EXPECT_THAT(ParseCriRecord(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("CRI log record")))
        << bad;
  }
}

TEST(CriLogTest, FormatRoundTrips) {
  CriRecord r;
  r.time = absl::FromUnixNanos(1763870000123456789);
  r.is_stderr = true;
  r.partial = true;
  r.line = "abc def";
  SKIFF_ASSERT_OK_AND_ASSIGN(CriRecord back, ParseCriRecord(FormatCriRecord(r)));
  EXPECT_EQ(back.time, r.time);
  EXPECT_EQ(back.is_stderr, r.is_stderr);
  EXPECT_EQ(back.partial, r.partial);
  EXPECT_EQ(back.line, r.line);
}

TEST(ConsoleLogReaderTest, ReturnsOnlyCompleteRecordsIncrementally) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/console.log";
  EXPECT_THAT(ConsoleLogReader::Open(path), StatusIs(absl::StatusCode::kNotFound));
  std::ofstream out(path);
  out << "2026-11-23T04:10:15Z stdout F one\n2026-11-23T04:10:15Z stderr F tw" << std::flush;
  SKIFF_ASSERT_OK_AND_ASSIGN(ConsoleLogReader reader, ConsoleLogReader::Open(path));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::vector<CriRecord> recs, reader.ReadAvailable());
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].line, "one");
  out << "o\nnot a record\n" << std::flush;
  SKIFF_ASSERT_OK_AND_ASSIGN(recs, reader.ReadAvailable());
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].line, "two");
  EXPECT_TRUE(recs[0].is_stderr);
  EXPECT_EQ(recs[1].line, "not a record");  // kept raw, not dropped
  SKIFF_ASSERT_OK_AND_ASSIGN(recs, reader.ReadAvailable());
  EXPECT_TRUE(recs.empty());
}

v1::shim::ShimStatus Shim(v1::shim::State s) {
  v1::shim::ShimStatus st;
  st.set_state(s);
  st.set_pid(42);
  return st;
}

std::vector<v1::Event::Type> Types(const std::vector<v1::Event>& events) {
  std::vector<v1::Event::Type> out;
  for (const auto& e : events) out.push_back(e.type());
  return out;
}

TEST(InstanceStateTest, StepByStep) {
  v1::Instance inst;
  inst.set_id("a");
  inst.set_state(v1::CREATED);
  EXPECT_THAT(Types(ApplyShimStatus(Shim(v1::shim::RUNNING), &inst)),
              ElementsAre(v1::Event::STARTED));
  EXPECT_EQ(inst.state(), v1::STARTED);
  EXPECT_EQ(inst.pid(), 42);
  EXPECT_TRUE(inst.has_started_at());
  EXPECT_TRUE(Types(ApplyShimStatus(Shim(v1::shim::RUNNING), &inst)).empty());
  EXPECT_THAT(Types(ApplyShimStatus(Shim(v1::shim::READY), &inst)), ElementsAre(v1::Event::READY));
  EXPECT_THAT(Types(ApplyShimStatus(Shim(v1::shim::STOPPING), &inst)),
              ElementsAre(v1::Event::STOPPING));
  auto exited = Shim(v1::shim::EXITED);
  exited.set_exit_code(0);
  exited.set_exit_reason(v1::STOPPED);
  auto events = ApplyShimStatus(exited, &inst);
  ASSERT_THAT(Types(events), ElementsAre(v1::Event::EXITED));
  EXPECT_EQ(events[0].exit().reason(), v1::STOPPED);
  EXPECT_EQ(events[0].instance_id(), "a");
  EXPECT_EQ(inst.state(), v1::EXITED);
  EXPECT_EQ(inst.pid(), 0);
  EXPECT_EQ(inst.exit().reason(), v1::STOPPED);
  // Never backwards.
  EXPECT_TRUE(Types(ApplyShimStatus(Shim(v1::shim::RUNNING), &inst)).empty());
  EXPECT_EQ(inst.state(), v1::EXITED);
}

TEST(InstanceStateTest, SkippedStatesAreFilledFromTimestamps) {
  v1::Instance inst;
  inst.set_state(v1::CREATED);
  auto st = Shim(v1::shim::EXITED);
  st.set_started_unix_ns(1000);
  st.set_ready_unix_ns(2000);
  st.set_exit_signal(9);
  st.set_exit_code(-1);
  st.set_exit_reason(v1::KILLED);
  auto events = ApplyShimStatus(st, &inst);
  EXPECT_THAT(Types(events), ElementsAre(v1::Event::STARTED, v1::Event::READY, v1::Event::EXITED));
  EXPECT_EQ(events[0].time().nanos(), 1000);
  // A job that never became ready and was not stopped: no READY, no STOPPING.
  v1::Instance job;
  job.set_state(v1::CREATED);
  auto done = Shim(v1::shim::EXITED);
  done.set_started_unix_ns(1000);
  done.set_exit_code(3);
  EXPECT_THAT(Types(ApplyShimStatus(done, &job)),
              ElementsAre(v1::Event::STARTED, v1::Event::EXITED));
  EXPECT_EQ(job.exit().reason(), v1::COMPLETED);  // inferred when the shim left it unset
  EXPECT_EQ(job.exit().code(), 3);
}

TEST(InstanceStateTest, LostStatus) {
  v1::Instance inst;
  inst.set_state(v1::READY);
  auto events = ApplyShimStatus(LostStatus("gone"), &inst);
  ASSERT_THAT(Types(events), ElementsAre(v1::Event::EXITED));
  EXPECT_EQ(inst.exit().reason(), v1::LOST);
  EXPECT_EQ(inst.exit().message(), "gone");
}

}  // namespace
}  // namespace skiff::agent
