// InstanceController against a fake runtime and image store: creation and its
// rollback, idempotency, the state machine via the watcher, stop/delete, capacity,
// events, and recovery.

#include "agent/instances/instance_controller.h"

#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "agent/instances/spec_defaults.h"
#include "agent/instances/state_files.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using testing::FakeImageStore;
using testing::FakeRuntime;
using ::testing::HasSubstr;
using testing::OnTerm;
using ::testing::StartsWith;
using testing::TempDir;

constexpr char kImage[] = "127.0.0.1:5000/hello:latest";

class InstanceControllerTest : public ::testing::Test {
 protected:
  InstanceControllerTest() : images_(tmp_.path() + "/images") {
    state_dir_ = tmp_.path() + "/state";
    images::ImageConfig config;
    config.cmd = {"/bin/httpd", "-f"};
    config.user = "app";
    digest_ = images_.AddRemote(kImage, config, {{"etc/passwd", "app:x:7:8::/:/bin/sh\n"}})
                  .manifest_digest;
    pool_ = *IpPool::Create("10.88.0.0/29");  // 2 usable pairs
    MakeController();
  }
  ~InstanceControllerTest() override { controller_.reset(); }

  void MakeController(bool cpu_throttle = false) {
    ControllerOptions opts;
    opts.state_dir = state_dir_;
    opts.capacity = {4000, 4ull << 30};
    opts.cgroup_parent = "skiff-test";
    opts.cpu_throttle = cpu_throttle;
    controller_ =
        std::make_unique<InstanceController>(opts, &images_, &runtime_, pool_.get(), &bus_);
  }

  v1::InstanceSpec Spec() {
    v1::InstanceSpec spec;
    spec.set_image(kImage);
    spec.set_memory_bytes(256 << 20);
    (*spec.mutable_labels())["service"] = "hello";
    return spec;
  }

  std::string Dir(const std::string& id) { return state_dir_ + "/instances/" + id; }
  bool Exists(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0;
  }
  std::vector<v1::Event::Type> Drain(EventSubscription& sub) {
    std::vector<v1::Event::Type> out;
    for (;;) {
      auto e = sub.Next(absl::Milliseconds(200));
      if (!e.ok() || !e->has_value()) return out;
      out.push_back((*e)->type());
    }
  }
  // Nothing allocated, nothing on disk, nothing in the table.
  void ExpectNothingLeft(const std::string& id) {
    EXPECT_FALSE(Exists(Dir(id))) << Dir(id);
    EXPECT_EQ(pool_->in_use(), 0u);
    v1::Node node = controller_->GetNode();
    EXPECT_EQ(node.vcpus_milli_allocated(), 0u);
    EXPECT_EQ(node.memory_bytes_allocated(), 0u);
    EXPECT_THAT(controller_->Get(id), StatusIs(absl::StatusCode::kNotFound));
    EXPECT_EQ(images_.users(digest_), 0);
  }

  TempDir tmp_;
  std::string state_dir_;
  FakeImageStore images_;
  std::string digest_;
  FakeRuntime runtime_;
  std::unique_ptr<IpPool> pool_;
  EventBus bus_;
  std::unique_ptr<InstanceController> controller_;
};

TEST_F(InstanceControllerTest, CreateBuildsTheShimConfig) {
  auto sub = bus_.Subscribe("");
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, controller_->Create("web-1", Spec()));
  EXPECT_EQ(inst.id(), "web-1");
  EXPECT_EQ(inst.state(), v1::STARTED);
  EXPECT_EQ(inst.ip(), "10.88.0.3");
  EXPECT_EQ(inst.port(), 8080u);
  EXPECT_EQ(inst.image_digest(), digest_);
  EXPECT_EQ(inst.spec().termination_grace().seconds(), 10);  // defaults stored
  EXPECT_GT(inst.pid(), 0);
  EXPECT_EQ(images_.pulls(), 1);
  EXPECT_EQ(images_.users(digest_), 1);

  auto shim = runtime_.shim(Dir("web-1"));
  ASSERT_NE(shim, nullptr);
  const v1::shim::ShimConfig& c = shim->config();
  EXPECT_EQ(c.instance_id(), "web-1");
  EXPECT_EQ(c.state_dir(), Dir("web-1"));
  EXPECT_EQ(c.generation(), 1);
  EXPECT_THAT(c.argv(), ElementsAre("/bin/httpd", "-f"));
  EXPECT_EQ(c.uid(), 7u);
  EXPECT_EQ(c.gid(), 8u);
  EXPECT_EQ(c.hostname(), "web-1");
  EXPECT_EQ(c.cgroup_path(), "skiff-test/web-1");
  EXPECT_EQ(c.host_veth(), "sk-0a580002");
  EXPECT_EQ(c.host_ip(), "10.88.0.2");
  EXPECT_EQ(c.instance_ip(), "10.88.0.3");
  EXPECT_EQ(c.prefix_len(), 31u);
  EXPECT_EQ(c.memory_bytes(), 256u << 20);
  EXPECT_EQ(c.vcpus_milli(), 1000u);
  EXPECT_EQ(c.port(), 8080u);
  EXPECT_EQ(c.startup_timeout_ms(), 240000u);
  EXPECT_EQ(c.termination_grace_ms(), 10000u);
  EXPECT_FALSE(c.is_job());
  EXPECT_THAT(c.env(), ::testing::Contains("PORT=8080"));
  EXPECT_TRUE(runtime_.opened_quotas().empty());  // no CPU throttle unless the ingress is on
  EXPECT_EQ(controller_->Throttle("web-1"), nullptr);
  EXPECT_TRUE(Exists(Dir("web-1") + "/instance.pb"));

  v1::Node node = controller_->GetNode();
  EXPECT_EQ(node.vcpus_milli_allocated(), 1000u);
  EXPECT_EQ(node.memory_bytes_allocated(), 256u << 20);
  EXPECT_EQ(node.instances_total(), 1u);
  EXPECT_EQ(node.instances_by_state().at("STARTED"), 1u);
  EXPECT_EQ(node.cgroup_version(), "v1");
  EXPECT_THAT(Drain(*sub), ElementsAre(v1::Event::CREATED, v1::Event::STARTED));
}

TEST_F(InstanceControllerTest, CreateIsIdempotentOnIdAndSpec) {
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance a, controller_->Create("web-1", Spec()));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance b, controller_->Create("web-1", Spec()));
  EXPECT_EQ(a.created_at().seconds(), b.created_at().seconds());
  EXPECT_EQ(a.created_at().nanos(), b.created_at().nanos());
  EXPECT_EQ(runtime_.launches(), 1);
  // Defaults written out explicitly are the same spec.
  v1::InstanceSpec explicit_spec = Spec();
  explicit_spec.set_port(8080);
  SKIFF_EXPECT_OK(controller_->Create("web-1", explicit_spec));
  v1::InstanceSpec other = Spec();
  other.set_port(9000);
  EXPECT_THAT(controller_->Create("web-1", other),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "instance_id: web-1 already exists with a different spec"));
  EXPECT_EQ(runtime_.launches(), 1);
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 1000u);
}

TEST_F(InstanceControllerTest, ConcurrentCreatesOfOneIdStartOneInstance) {
  images_.set_pull_delay(absl::Milliseconds(300));
  absl::StatusOr<v1::Instance> first;
  std::thread t([&] { first = controller_->Create("race", Spec()); });
  absl::SleepFor(absl::Milliseconds(100));
  // While the first is pulling: same spec → retry later; another spec → conflict.
  EXPECT_THAT(controller_->Create("race", Spec()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("is being created")));
  v1::InstanceSpec other = Spec();
  other.set_port(1234);
  EXPECT_THAT(controller_->Create("race", other), StatusIs(absl::StatusCode::kAlreadyExists));
  // Capacity is held by the pending create.
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 1000u);
  t.join();
  SKIFF_ASSERT_OK(first);
  SKIFF_EXPECT_OK(controller_->Create("race", Spec()));
  EXPECT_EQ(runtime_.launches(), 1);
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 1000u);
}

TEST_F(InstanceControllerTest, FailedCreatesLeaveNothing) {
  auto sub = bus_.Subscribe("");
  v1::InstanceSpec bad = Spec();
  bad.set_memory_bytes(0);
  EXPECT_THAT(controller_->Create("x", bad),
              StatusIs(absl::StatusCode::kInvalidArgument, "spec.memory_bytes: must be > 0"));
  ExpectNothingLeft("x");

  v1::InstanceSpec unknown = Spec();
  unknown.set_image("127.0.0.1:5000/nope:latest");
  EXPECT_THAT(controller_->Create("x", unknown),
              StatusIs(absl::StatusCode::kNotFound, StartsWith("spec.image: ")));
  ExpectNothingLeft("x");

  v1::InstanceSpec unreachable = Spec();
  unreachable.set_image("unreachable.invalid/a:b");
  EXPECT_THAT(controller_->Create("x", unreachable),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("unreachable.invalid/a:b")));
  ExpectNothingLeft("x");

  v1::InstanceSpec badref = Spec();
  badref.set_image("Bad/Ref");
  EXPECT_THAT(controller_->Create("x", badref),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("spec.image: ")));
  ExpectNothingLeft("x");

  v1::InstanceSpec nouser = Spec();
  nouser.set_user("ghost");
  EXPECT_THAT(controller_->Create("x", nouser),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("spec.user: ")));
  ExpectNothingLeft("x");

  v1::InstanceSpec huge = Spec();
  huge.set_vcpus_milli(8000);
  EXPECT_THAT(controller_->Create("x", huge),
              StatusIs(absl::StatusCode::kResourceExhausted, StartsWith("spec.vcpus_milli: ")));
  ExpectNothingLeft("x");

  EXPECT_THAT(controller_->Create("Bad_Id", Spec()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("instance_id: ")));

  runtime_.FailNextLaunch(absl::FailedPreconditionError("mount(overlay, /x): EINVAL"));
  EXPECT_THAT(controller_->Create("x", Spec()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "start instance x: mount(overlay, /x): EINVAL"));
  ExpectNothingLeft("x");
  EXPECT_TRUE(Drain(*sub).empty());  // no events for instances that never were

  // The id is free again afterwards.
  SKIFF_EXPECT_OK(controller_->Create("x", Spec()));
}

TEST_F(InstanceControllerTest, CapacityAndIpPoolAreAccountedAndReleased) {
  v1::InstanceSpec spec = Spec();
  spec.set_vcpus_milli(2000);
  SKIFF_ASSERT_OK(controller_->Create("a", spec));
  SKIFF_ASSERT_OK(controller_->Create("b", spec));
  // CPU full.
  EXPECT_THAT(controller_->Create("c", spec),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "spec.vcpus_milli: 2000 exceeds the node's free capacity of 0"));
  SKIFF_ASSERT_OK(controller_->Stop("a", absl::ZeroDuration()));
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 2000u);
  EXPECT_EQ(pool_->in_use(), 1u);
  SKIFF_ASSERT_OK(controller_->Create("c", spec));
  // IP pool (2 pairs) full now even with CPU to spare.
  spec.set_vcpus_milli(10);
  SKIFF_ASSERT_OK(controller_->Stop("b", absl::ZeroDuration()));
  SKIFF_ASSERT_OK(controller_->Create("d", spec));
  spec.set_vcpus_milli(20);
  EXPECT_THAT(controller_->Create("e", spec),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("ip_pool")));
  EXPECT_FALSE(Exists(Dir("e")));
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 2010u);
}

TEST_F(InstanceControllerTest, SkipsPairsWhoseVethExistsOnTheHost) {
  runtime_.AddHostLink("sk-0a580002");  // 10.88.0.2's veth belongs to someone else
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, controller_->Create("a", Spec()));
  EXPECT_EQ(inst.ip(), "10.88.0.5");
  EXPECT_EQ(runtime_.shim(Dir("a"))->config().host_veth(), "sk-0a580004");
  // The taken pair stays out of use; the pool (2 pairs) is now full.
  EXPECT_THAT(controller_->Create("b", Spec()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("ip_pool")));
  EXPECT_FALSE(Exists(Dir("b")));
}

TEST_F(InstanceControllerTest, WatcherDrivesStatesAndEventsInOrder) {
  auto sub = bus_.Subscribe("svc");
  SKIFF_ASSERT_OK(controller_->Create("svc", Spec()));
  auto shim = runtime_.shim(Dir("svc"));
  shim->MoveTo(v1::shim::READY);
  for (int i = 0; i < 200 && controller_->Get("svc")->state() != v1::READY; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, controller_->Get("svc"));
  EXPECT_EQ(inst.state(), v1::READY);
  EXPECT_TRUE(inst.has_ready_at());
  shim->Exit(3, 0, v1::COMPLETED);
  EXPECT_TRUE(controller_->WaitForExit("svc", absl::Seconds(5)));
  SKIFF_ASSERT_OK_AND_ASSIGN(inst, controller_->Get("svc"));
  EXPECT_EQ(inst.exit().code(), 3);
  EXPECT_EQ(inst.exit().reason(), v1::COMPLETED);
  EXPECT_EQ(inst.pid(), 0);
  EXPECT_THAT(Drain(*sub), ElementsAre(v1::Event::CREATED, v1::Event::STARTED, v1::Event::READY,
                                       v1::Event::EXITED));
  // Exit released everything but the record and its dir.
  EXPECT_EQ(pool_->in_use(), 0u);
  EXPECT_EQ(controller_->GetNode().memory_bytes_allocated(), 0u);
  EXPECT_EQ(images_.users(digest_), 0);
  EXPECT_TRUE(Exists(Dir("svc")));
}

TEST_F(InstanceControllerTest, StopBlocksUntilExitedAndHonoursGraceOverride) {
  SKIFF_ASSERT_OK(controller_->Create("ign", Spec()));
  auto shim = runtime_.shim(Dir("ign"));
  shim->set_on_term(OnTerm::kIgnore);
  auto sub = bus_.Subscribe("ign");
  const absl::Time start = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, controller_->Stop("ign", absl::Milliseconds(300)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(inst.state(), v1::EXITED);
  EXPECT_EQ(inst.exit().reason(), v1::KILLED);
  EXPECT_EQ(inst.exit().signal(), 9);
  EXPECT_GE(took, absl::Milliseconds(290));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_EQ(shim->last_stop_grace(), absl::Milliseconds(300));
  EXPECT_THAT(Drain(*sub), ElementsAre(v1::Event::STOPPING, v1::Event::EXITED));
  // Stopping an exited instance returns it without asking the shim again.
  SKIFF_ASSERT_OK_AND_ASSIGN(inst, controller_->Stop("ign", std::nullopt));
  EXPECT_EQ(shim->stops(), 1);
  EXPECT_THAT(controller_->Stop("nope", std::nullopt),
              StatusIs(absl::StatusCode::kNotFound, "instance_id: nope not found"));
}

TEST_F(InstanceControllerTest, CpuThrottleFollowsTheInstance) {
  controller_.reset();
  MakeController(/*cpu_throttle=*/true);
  SKIFF_ASSERT_OK(controller_->Create("t1", Spec()));
  EXPECT_THAT(runtime_.opened_quotas(), ElementsAre("skiff-test/t1"));
  std::shared_ptr<ingress::CpuThrottle> throttle = controller_->Throttle("t1");
  ASSERT_NE(throttle, nullptr);
  EXPECT_EQ(throttle->stats().state, ingress::CpuThrottle::State::kUnthrottled);  // starting up
  runtime_.shim(Dir("t1"))->MoveTo(v1::shim::READY);
  for (int i = 0; i < 200 && controller_->Get("t1")->state() != v1::READY; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Ready with nothing in flight: down to the floor (1 % of a CPU).
  EXPECT_EQ(throttle->stats().state, ingress::CpuThrottle::State::kThrottled);
  EXPECT_EQ(throttle->stats().quota_us, 1000u);
  SKIFF_ASSERT_OK(controller_->Stop("t1", absl::ZeroDuration()));
  EXPECT_EQ(controller_->Throttle("t1"), nullptr);  // released with the instance
}

TEST_F(InstanceControllerTest, StopDrainsBeforeSignallingWithTheGraceLeft) {
  std::vector<std::string> drained;
  controller_->SetDrainHook([&](const v1::Instance& inst, absl::Time deadline) {
    drained.push_back(inst.id());
    EXPECT_GT(deadline - absl::Now(), absl::Milliseconds(900));
    absl::SleepFor(absl::Milliseconds(400));  // in-flight requests finishing
  });
  SKIFF_ASSERT_OK(controller_->Create("dr", Spec()));
  auto shim = runtime_.shim(Dir("dr"));
  SKIFF_ASSERT_OK(controller_->Stop("dr", absl::Seconds(1)));
  EXPECT_THAT(drained, ElementsAre("dr"));
  ASSERT_TRUE(shim->last_stop_grace().has_value());
  EXPECT_LE(*shim->last_stop_grace(), absl::Milliseconds(600));
  EXPECT_GE(*shim->last_stop_grace(), absl::Milliseconds(300));
  // An exited instance is not drained again.
  SKIFF_ASSERT_OK(controller_->Stop("dr", std::nullopt));
  EXPECT_EQ(drained.size(), 1u);
}

TEST_F(InstanceControllerTest, DeleteRefusesRunningUnlessForced) {
  SKIFF_ASSERT_OK(controller_->Create("d1", Spec()));
  EXPECT_THAT(controller_->Delete("d1", false),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       StartsWith("instance_id: d1 is STARTED; stop it first")));
  EXPECT_TRUE(Exists(Dir("d1")));
  SKIFF_ASSERT_OK(controller_->Delete("d1", true));
  EXPECT_EQ(runtime_.shim(Dir("d1"))->last_stop_grace(), absl::ZeroDuration());
  ExpectNothingLeft("d1");
  SKIFF_ASSERT_OK(controller_->Create("d2", Spec()));
  SKIFF_ASSERT_OK(controller_->Stop("d2", std::nullopt));
  SKIFF_ASSERT_OK(controller_->Delete("d2", false));
  ExpectNothingLeft("d2");
  EXPECT_THAT(controller_->Delete("d2", false), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(InstanceControllerTest, ShimVanishingGivesRecordedExitOrLost) {
  SKIFF_ASSERT_OK(controller_->Create("v1", Spec()));
  SKIFF_ASSERT_OK(controller_->Create("v2", Spec()));
  v1::shim::ShimStatus recorded;
  recorded.set_state(v1::shim::EXITED);
  recorded.set_exit_code(137);
  recorded.set_exit_reason(v1::OOM_KILLED);
  runtime_.Vanish(Dir("v1"), recorded);
  runtime_.Vanish(Dir("v2"), std::nullopt);
  ASSERT_TRUE(controller_->WaitForExit("v1", absl::Seconds(5)));
  ASSERT_TRUE(controller_->WaitForExit("v2", absl::Seconds(5)));
  EXPECT_EQ(controller_->Get("v1")->exit().reason(), v1::OOM_KILLED);
  EXPECT_EQ(controller_->Get("v2")->exit().reason(), v1::LOST);
  EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(InstanceControllerTest, LostInstanceCgroupAndRootfsAreRemoved) {
  SKIFF_ASSERT_OK(controller_->Create("lost", Spec()));
  SKIFF_ASSERT_OK(controller_->Create("kept", Spec()));
  // What a shim's sandbox leaves in its state dir.
  for (const char* id : {"lost", "kept"}) {
    std::filesystem::create_directories(Dir(id) + "/rootfs/upper/etc");
    SKIFF_ASSERT_OK(WriteProtoFile(Dir(id) + "/rootfs/upper/etc/x.pb", v1::Instance()));
  }
  v1::shim::ShimStatus recorded;
  recorded.set_state(v1::shim::EXITED);
  recorded.set_exit_code(0);
  runtime_.Vanish(Dir("kept"), recorded);  // recorded its exit: its shim cleaned up
  runtime_.Vanish(Dir("lost"), std::nullopt);
  ASSERT_TRUE(controller_->WaitForExit("lost", absl::Seconds(5)));
  ASSERT_TRUE(controller_->WaitForExit("kept", absl::Seconds(5)));
  EXPECT_EQ(controller_->Get("lost")->exit().reason(), v1::LOST);
  EXPECT_THAT(runtime_.destroyed_cgroups(), ElementsAre("skiff-test/lost"));
  EXPECT_FALSE(Exists(Dir("lost") + "/rootfs"));
  EXPECT_TRUE(Exists(Dir("lost") + "/instance.pb"));  // the record stays until Delete
  EXPECT_TRUE(Exists(Dir("kept") + "/rootfs/upper/etc/x.pb"));
  EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(InstanceControllerTest, TimestampsCarryNanoseconds) {
  runtime_.set_start_state(v1::shim::READY);
  auto sub = bus_.Subscribe("");
  const absl::Time before = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, controller_->Create("ts", Spec()));
  const absl::Time after = absl::Now();
  auto to_time = [](const google::protobuf::Timestamp& t) {
    return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  };
  ASSERT_EQ(inst.state(), v1::READY);
  const absl::Time created = to_time(inst.created_at());
  const absl::Time ready = to_time(inst.ready_at());
  // Whole seconds would put created_at up to 1 s before the call.
  EXPECT_GE(created, before);
  EXPECT_LE(created, after);
  EXPECT_GE(ready, created);
  EXPECT_LE(ready - created, after - before);
  int events = 0;
  for (;;) {
    auto e = sub->Next(absl::Milliseconds(100));
    if (!e.ok() || !e->has_value()) break;
    ++events;
    const absl::Time t = to_time((*e)->time());
    EXPECT_GE(t, before) << (*e)->DebugString();
    EXPECT_LE(t, after) << (*e)->DebugString();
  }
  EXPECT_EQ(events, 3);  // CREATED, STARTED, READY
  // An event published without a time gets the bus's clock, also to the nanosecond.
  const absl::Time t0 = absl::Now();
  v1::Event bare;
  bare.set_type(v1::Event::CREATED);
  const v1::Event stamped = bus_.Publish(bare);
  EXPECT_GE(to_time(stamped.time()), t0);
  EXPECT_LE(to_time(stamped.time()), absl::Now());
}

TEST_F(InstanceControllerTest, ShutdownJoinsEveryWatcher) {
  SKIFF_ASSERT_OK(controller_->Create("w1", Spec()));
  SKIFF_ASSERT_OK(controller_->Create("w2", Spec()));
  const absl::Time t0 = absl::Now();
  controller_->Shutdown();  // the fake connections block in Subscribe until cancelled
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
  EXPECT_FALSE(runtime_.shim(Dir("w1"))->gone());  // instances untouched
  EXPECT_EQ(controller_->Get("w1")->state(), v1::STARTED);
  controller_.reset();
}

TEST_F(InstanceControllerTest, JobThatFinishedBeforeCreateReturnedIsCreatedAndExited) {
  auto sub = bus_.Subscribe("");
  v1::shim::ShimStatus done;
  done.set_state(v1::shim::EXITED);
  done.set_started_unix_ns(1);
  done.set_exit_code(7);
  done.set_exit_reason(v1::COMPLETED);
  runtime_.FinishOnNextLaunch(done);
  v1::InstanceSpec spec = Spec();
  spec.set_kind(v1::JOB);
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, controller_->Create("quick", spec));
  EXPECT_EQ(inst.state(), v1::EXITED);
  EXPECT_EQ(inst.exit().code(), 7);
  EXPECT_THAT(Drain(*sub), ElementsAre(v1::Event::CREATED, v1::Event::STARTED, v1::Event::EXITED));
  EXPECT_EQ(pool_->in_use(), 0u);
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 0u);
  EXPECT_EQ(images_.users(digest_), 0);
  SKIFF_EXPECT_OK(controller_->Delete("quick", false));
}

TEST_F(InstanceControllerTest, ListFiltersByLabelsSortedById) {
  v1::InstanceSpec a = Spec();
  (*a.mutable_labels())["rev"] = "1";
  v1::InstanceSpec b = Spec();
  (*b.mutable_labels())["service"] = "other";
  SKIFF_ASSERT_OK(controller_->Create("zz", a));
  SKIFF_ASSERT_OK(controller_->Create("aa", b));
  auto ids = [&](const std::string& sel) {
    std::vector<std::string> out;
    auto list = controller_->List(sel);
    EXPECT_THAT(list, IsOk());
    if (list.ok()) {
      for (const auto& i : *list) out.push_back(i.id());
    }
    return out;
  };
  EXPECT_THAT(ids(""), ElementsAre("aa", "zz"));
  EXPECT_THAT(ids("service=hello"), ElementsAre("zz"));
  EXPECT_THAT(ids("service!=hello"), ElementsAre("aa"));
  EXPECT_THAT(ids("rev"), ElementsAre("zz"));
  EXPECT_THAT(controller_->List("a=b=c"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(InstanceControllerTest, RecoveryRebuildsTableKillsNothing) {
  SKIFF_ASSERT_OK(controller_->Create("live", Spec()));
  SKIFF_ASSERT_OK(controller_->Create("done", Spec()));
  SKIFF_ASSERT_OK(controller_->Stop("done", std::nullopt));
  runtime_.shim(Dir("live"))->MoveTo(v1::shim::READY);
  absl::SleepFor(absl::Milliseconds(50));
  // "done"'s shim exits after recording; a third instance's shim dies unrecorded.
  v1::shim::ShimStatus done_status = runtime_.shim(Dir("done"))->status();
  runtime_.Vanish(Dir("done"), done_status);
  controller_.reset();  // the agent goes away; shims stay

  // A fresh agent: empty pool, empty allocations.
  pool_ = *IpPool::Create("10.88.0.0/29");
  MakeController();
  SKIFF_ASSERT_OK_AND_ASSIGN(RecoveryReport report, controller_->Recover());
  EXPECT_EQ(report.running, 1);
  EXPECT_EQ(report.exited, 1);
  EXPECT_EQ(report.lost, 0);
  EXPECT_TRUE(report.problems.empty());
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance live, controller_->Get("live"));
  EXPECT_EQ(live.state(), v1::READY);
  EXPECT_EQ(live.ip(), "10.88.0.3");
  EXPECT_EQ(live.spec().labels().at("service"), "hello");
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance done, controller_->Get("done"));
  EXPECT_EQ(done.state(), v1::EXITED);
  EXPECT_EQ(done.exit().reason(), v1::STOPPED);
  EXPECT_EQ(runtime_.shim(Dir("live"))->stops(), 0);  // nothing killed
  EXPECT_EQ(pool_->in_use(), 1u);
  EXPECT_EQ(controller_->GetNode().vcpus_milli_allocated(), 1000u);
  // The recovered IP is not handed out again.
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance next, controller_->Create("next", Spec()));
  EXPECT_EQ(next.ip(), "10.88.0.5");
  // And the live one can be stopped through its shim.
  SKIFF_ASSERT_OK_AND_ASSIGN(live, controller_->Stop("live", std::nullopt));
  EXPECT_EQ(live.state(), v1::EXITED);
  EXPECT_EQ(runtime_.shim(Dir("live"))->stops(), 1);
}

TEST_F(InstanceControllerTest, RecoveryFinishesTheRollbackOfAnInterruptedCreate) {
  // What a crash between writing instance.pb and launching the shim leaves.
  const std::string dir = Dir("half");
  std::filesystem::create_directories(dir);
  v1::Instance inst;
  inst.set_id("half");
  SKIFF_ASSERT_OK(WriteProtoFile(dir + "/instance.pb", inst));
  SKIFF_ASSERT_OK_AND_ASSIGN(RecoveryReport report, controller_->Recover());
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_THAT(report.problems[0], HasSubstr("interrupted before launch"));
  EXPECT_FALSE(Exists(dir));
  EXPECT_THAT(controller_->Get("half"), StatusIs(absl::StatusCode::kNotFound));
  SKIFF_EXPECT_OK(controller_->Create("half", Spec()));
}

TEST_F(InstanceControllerTest, RecoveryMarksUnrecordedDeadShimsLostAndReportsJunk) {
  SKIFF_ASSERT_OK(controller_->Create("gone", Spec()));
  controller_.reset();
  runtime_.Vanish(Dir("gone"), std::nullopt);
  std::filesystem::create_directories(state_dir_ + "/instances/Not_An_Id");
  std::filesystem::create_directories(state_dir_ + "/instances/empty");
  pool_ = *IpPool::Create("10.88.0.0/29");
  MakeController();
  SKIFF_ASSERT_OK_AND_ASSIGN(RecoveryReport report, controller_->Recover());
  EXPECT_EQ(report.lost, 1);
  EXPECT_EQ(report.problems.size(), 2u);
  EXPECT_EQ(controller_->Get("gone")->exit().reason(), v1::LOST);
  EXPECT_THAT(runtime_.destroyed_cgroups(), ElementsAre("skiff-test/gone"));
  EXPECT_EQ(pool_->in_use(), 0u);
}

}  // namespace
}  // namespace skiff::agent
