// The service RPCs of the Agent API (a real gRPC server on a Unix socket over a fake
// ServiceActivator) and skiffctl's `service` commands against it.

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <sstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/api/agent_service.h"
#include "agent/ingress/service_validation.h"
#include "agent/instances/ip_pool.h"
#include "agent/skiffctl/commands.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Validates like the real activator (NormalizeService) and keeps services in a map.
class FakeActivator : public ingress::ServiceActivator {
 public:
  absl::StatusOr<v1::Service> Put(v1::Service service) override {
    absl::StatusOr<v1::Service> s = ingress::NormalizeService(std::move(service));
    if (!s.ok()) return s.status();
    absl::MutexLock lock(&mu_);
    services_[s->name()] = *s;
    return *s;
  }
  absl::Status Delete(const std::string& name) override {
    absl::MutexLock lock(&mu_);
    if (services_.erase(name) == 0) {
      return absl::NotFoundError(absl::StrCat("service ", name, ": not found"));
    }
    return absl::OkStatus();
  }
  std::vector<v1::Service> List() const override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Service> out;
    for (const auto& [name, s] : services_) out.push_back(s);
    return out;
  }
  std::vector<v1::ServiceStats> Stats() const override {
    absl::MutexLock lock(&mu_);
    ++stats_calls_;
    std::vector<v1::ServiceStats> out;
    for (const auto& [name, s] : services_) {
      v1::ServiceStats st;
      st.set_name(name);
      st.set_ready(2);
      st.set_starting(1);
      st.set_in_flight(7);
      st.set_queued(3);
      st.set_desired(3);
      st.set_cold_starts(4);
      st.set_requests(1234);
      st.set_last_start_error(stats_calls_ > 1 ? "" : "pull(x): boom");
      out.push_back(st);
    }
    return out;
  }
  std::vector<absl::Status> LoadErrors() const override { return {}; }
  void InstanceReady(const std::string&, const std::string&) override {}
  void InstanceExited(const std::string&, const std::string&) override {}

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, v1::Service> services_ ABSL_GUARDED_BY(mu_);
  mutable int stats_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class ServiceApiTest : public ::testing::Test {
 protected:
  ServiceApiTest() : images_(tmp_.path() + "/images") {
    ControllerOptions opts;
    opts.state_dir = tmp_.path() + "/state";
    opts.capacity = {4000, 4ull << 30};
    opts.cgroup_parent = "skiff-test";
    pool_ = *IpPool::Create("10.88.0.0/29");
    controller_ =
        std::make_unique<InstanceController>(opts, &images_, &runtime_, pool_.get(), &bus_);
    service_ = std::make_unique<AgentService>(controller_.get(), &images_, &bus_);
    service_->SetServiceActivator(&activator_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + tmp_.path() + "/agent.sock",
                             grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ctx_.stub = v1::Agent::NewStub(grpc::CreateChannel("unix:" + tmp_.path() + "/agent.sock",
                                                       grpc::InsecureChannelCredentials()));
    ctx_.out = &out_;
    ctx_.err = &err_;
  }
  ~ServiceApiTest() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    controller_.reset();
  }

  int Skiffctl(std::vector<std::string> args, bool json = false) {
    out_.str("");
    err_.str("");
    ctx_.json = json;
    return skiffctl::Service(ctx_, skiffctl::Args(std::move(args)));
  }

  static v1::Service Valid(const std::string& name) {
    v1::Service s;
    s.set_name(name);
    s.mutable_template_()->set_image("localhost:5000/hello:latest");
    s.mutable_template_()->set_memory_bytes(64 << 20);
    return s;
  }

  testing::TempDir tmp_;
  testing::FakeImageStore images_;
  testing::FakeRuntime runtime_;
  EventBus bus_;
  std::unique_ptr<IpPool> pool_;
  std::unique_ptr<InstanceController> controller_;
  FakeActivator activator_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  skiffctl::Context ctx_;
  std::ostringstream out_, err_;
};

TEST_F(ServiceApiTest, PutListDeleteOverGrpc) {
  v1::PutServiceRequest put;
  *put.mutable_service() = Valid("web");
  v1::Service stored;
  {
    grpc::ClientContext cctx;
    ASSERT_TRUE(ctx_.stub->PutService(&cctx, put, &stored).ok());
  }
  EXPECT_EQ(stored.max_instances(), 10u);  // defaults filled in by the activator
  EXPECT_EQ(stored.template_().labels().at("skiff.service"), "web");

  put.mutable_service()->mutable_template_()->set_memory_bytes(0);
  {
    grpc::ClientContext cctx;
    grpc::Status st = ctx_.stub->PutService(&cctx, put, &stored);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("service.template.memory_bytes"));
  }
  {
    grpc::ClientContext cctx;
    grpc::Status st = ctx_.stub->PutService(&cctx, v1::PutServiceRequest(), &stored);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "service: required");
  }
  v1::ListServicesResponse list;
  {
    grpc::ClientContext cctx;
    ASSERT_TRUE(ctx_.stub->ListServices(&cctx, v1::ListServicesRequest(), &list).ok());
  }
  ASSERT_EQ(list.services_size(), 1);
  EXPECT_EQ(list.services(0).name(), "web");

  v1::Node node;
  {
    grpc::ClientContext cctx;
    ASSERT_TRUE(ctx_.stub->GetNode(&cctx, v1::GetNodeRequest(), &node).ok());
  }
  ASSERT_EQ(node.services_size(), 1);
  EXPECT_EQ(node.services(0).name(), "web");
  EXPECT_EQ(node.services(0).desired(), 3u);
  EXPECT_EQ(node.services(0).requests(), 1234u);

  v1::DeleteServiceRequest del;
  del.set_name("web");
  v1::DeleteServiceResponse del_resp;
  {
    grpc::ClientContext cctx;
    EXPECT_TRUE(ctx_.stub->DeleteService(&cctx, del, &del_resp).ok());
  }
  {
    grpc::ClientContext cctx;
    grpc::Status st = ctx_.stub->DeleteService(&cctx, del, &del_resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(st.error_message(), HasSubstr("service web: not found"));
  }
  {
    grpc::ClientContext cctx;
    grpc::Status st = ctx_.stub->DeleteService(&cctx, v1::DeleteServiceRequest(), &del_resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(ServiceApiTest, WithoutAnIngressTheServiceRpcsAreUnimplemented) {
  service_->SetServiceActivator(nullptr);
  const std::string want = "the ingress is disabled (skiffd --ingress-listen is empty)";
  v1::Service stored;
  v1::PutServiceRequest put;
  *put.mutable_service() = Valid("web");
  {
    grpc::ClientContext cctx;
    grpc::Status st = ctx_.stub->PutService(&cctx, put, &stored);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    EXPECT_EQ(st.error_message(), want);
  }
  {
    grpc::ClientContext cctx;
    v1::ListServicesResponse list;
    EXPECT_EQ(ctx_.stub->ListServices(&cctx, v1::ListServicesRequest(), &list).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  {
    grpc::ClientContext cctx;
    v1::DeleteServiceRequest del;
    del.set_name("web");
    v1::DeleteServiceResponse resp;
    EXPECT_EQ(ctx_.stub->DeleteService(&cctx, del, &resp).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  {
    grpc::ClientContext cctx;
    auto reader = ctx_.stub->WatchServiceStats(&cctx, v1::WatchServiceStatsRequest());
    v1::ServiceStatsList l;
    EXPECT_FALSE(reader->Read(&l));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  {
    grpc::ClientContext cctx;
    v1::Node node;
    ASSERT_TRUE(ctx_.stub->GetNode(&cctx, v1::GetNodeRequest(), &node).ok());
    EXPECT_EQ(node.services_size(), 0);
  }
  EXPECT_EQ(Skiffctl({"ls"}), 1);
  EXPECT_EQ(err_.str(), "skiffctl: UNIMPLEMENTED: " + want + "\n");
}

TEST_F(ServiceApiTest, WatchServiceStatsStreamsAtTheInterval) {
  ASSERT_TRUE(activator_.Put(Valid("web")).ok());
  v1::WatchServiceStatsRequest req;
  *req.mutable_interval() = ingress::ToProto(absl::Milliseconds(100));
  grpc::ClientContext cctx;
  auto reader = ctx_.stub->WatchServiceStats(&cctx, req);
  std::vector<absl::Time> times;
  v1::ServiceStatsList list;
  for (int i = 0; i < 4 && reader->Read(&list); ++i) {
    ASSERT_EQ(list.services_size(), 1);
    EXPECT_EQ(list.services(0).ready(), 2u);
    times.push_back(absl::FromUnixSeconds(list.time().seconds()) +
                    absl::Nanoseconds(list.time().nanos()));
  }
  cctx.TryCancel();
  reader->Finish();
  ASSERT_EQ(times.size(), 4u);
  for (size_t i = 1; i < times.size(); ++i) {
    EXPECT_GE(times[i] - times[i - 1], absl::Milliseconds(90));
    EXPECT_LT(times[i] - times[i - 1], absl::Milliseconds(400));
  }
  for (absl::Duration bad : {absl::Milliseconds(50), absl::Seconds(61)}) {
    grpc::ClientContext c2;
    *req.mutable_interval() = ingress::ToProto(bad);
    auto r2 = ctx_.stub->WatchServiceStats(&c2, req);
    EXPECT_FALSE(r2->Read(&list));
    grpc::Status st = r2->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("interval: "));
  }
}

TEST(SkiffctlServicePutTest, ParsesEveryOption) {
  auto req = skiffctl::ParseServicePut(skiffctl::Args({"web",
                                                       "localhost:5000/flask:1",
                                                       "-m",
                                                       "128Mi",
                                                       "--cpu",
                                                       "500m",
                                                       "-p",
                                                       "9000",
                                                       "-e",
                                                       "A=1",
                                                       "--env=B=2",
                                                       "-l",
                                                       "tier=front",
                                                       "--concurrency",
                                                       "4",
                                                       "--cpu-allocation",
                                                       "instance",
                                                       "--cpu-boost",
                                                       "--grace",
                                                       "5s",
                                                       "--startup-timeout",
                                                       "20s",
                                                       "--request-timeout",
                                                       "60s",
                                                       "--gen",
                                                       "2",
                                                       "--entrypoint",
                                                       "/bin/app",
                                                       "-w",
                                                       "/srv",
                                                       "-u",
                                                       "1000:1000",
                                                       "--min",
                                                       "1",
                                                       "--max",
                                                       "3",
                                                       "--idle-timeout",
                                                       "90s",
                                                       "--max-queue",
                                                       "50",
                                                       "--queue-timeout",
                                                       "10s",
                                                       "--",
                                                       "--flag",
                                                       "x"}));
  ASSERT_TRUE(req.ok()) << req.status();
  const v1::Service& s = req->service();
  EXPECT_EQ(s.name(), "web");
  EXPECT_EQ(s.min_instances(), 1u);
  EXPECT_EQ(s.max_instances(), 3u);
  EXPECT_EQ(s.max_queue(), 50u);
  EXPECT_EQ(ingress::FromProto(s.idle_timeout()), absl::Seconds(90));
  EXPECT_EQ(ingress::FromProto(s.queue_timeout()), absl::Seconds(10));
  const v1::InstanceSpec& t = s.template_();
  EXPECT_EQ(t.image(), "localhost:5000/flask:1");
  EXPECT_EQ(t.memory_bytes(), 128ull << 20);
  EXPECT_EQ(t.vcpus_milli(), 500u);
  EXPECT_EQ(t.port(), 9000u);
  EXPECT_EQ(t.env().at("A"), "1");
  EXPECT_EQ(t.env().at("B"), "2");
  EXPECT_EQ(t.labels().at("tier"), "front");
  EXPECT_EQ(t.concurrency(), 4u);
  EXPECT_EQ(t.cpu_allocation(), v1::INSTANCE);
  EXPECT_TRUE(t.startup_cpu_boost());
  EXPECT_EQ(ingress::FromProto(t.termination_grace()), absl::Seconds(5));
  EXPECT_EQ(ingress::FromProto(t.startup_timeout()), absl::Seconds(20));
  EXPECT_EQ(ingress::FromProto(t.request_timeout()), absl::Seconds(60));
  EXPECT_EQ(t.generation(), v1::GEN2);
  ASSERT_EQ(t.command_size(), 1);
  EXPECT_EQ(t.command(0), "/bin/app");
  EXPECT_EQ(t.working_dir(), "/srv");
  EXPECT_EQ(t.user(), "1000:1000");
  ASSERT_EQ(t.args_size(), 2);
  EXPECT_EQ(t.args(0), "--flag");
  EXPECT_EQ(t.args(1), "x");
  EXPECT_EQ(t.kind(), v1::KIND_UNSPECIFIED);

  // Defaults: only memory (512Mi, like run); the rest is the server's.
  req = skiffctl::ParseServicePut(skiffctl::Args({"web", "img"}));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->service().template_().memory_bytes(), 512ull << 20);
  EXPECT_FALSE(req->service().has_idle_timeout());
  EXPECT_EQ(req->service().max_instances(), 0u);
}

TEST(SkiffctlServicePutTest, UsageErrorsNameTheFlag) {
  using ::skiff::testing::StatusIs;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"web"}, "want NAME IMAGE"},
      {{"web", "img", "extra"}, "want NAME IMAGE"},
      {{"web", "img", "--min", "x"}, "--min: \"x\" is not a number"},
      {{"web", "img", "--max"}, "--max: needs a value"},
      {{"web", "img", "--idle-timeout", "soon"}, "--idle-timeout: "},
      {{"web", "img", "--queue-timeout", "-1s"}, "--queue-timeout: "},
      {{"web", "img", "--max-queue", "-3"}, "--max-queue: "},
      {{"web", "img", "-m", "lots"}, "--memory: "},
      {{"web", "img", "--job"}, "unknown option --job"},
      {{"web", "img", "--task-index", "1"}, "unknown option --task-index"},
      {{"web", "img", "--gen", "3"}, "--gen wants 1 or 2"},
      {{"web", "img", "--cpu-allocation", "always"}, "--cpu-allocation wants"},
  };
  for (const auto& [args, want] : cases) {
    EXPECT_THAT(skiffctl::ParseServicePut(skiffctl::Args(args)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(want)))
        << absl::StrJoin(args, " ");
  }
}

TEST_F(ServiceApiTest, SkiffctlServiceCommands) {
  ASSERT_EQ(Skiffctl({"put", "web", "localhost:5000/hello:latest", "-m", "64Mi", "--concurrency",
                      "4", "--min", "1", "--max", "3", "--idle-timeout", "90s"}),
            0)
      << err_.str();
  // A table: header and one row with the stored (defaulted) values.
  std::istringstream lines(out_.str());
  std::string header, row, extra;
  std::getline(lines, header);
  std::getline(lines, row);
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_THAT(header, HasSubstr("NAME"));
  EXPECT_THAT(header, HasSubstr("QUEUE-TIMEOUT"));
  std::vector<std::string> cols = absl::StrSplit(row, ' ', absl::SkipEmpty());
  EXPECT_EQ(cols, (std::vector<std::string>{"web", "localhost:5000/hello:latest", "1", "3", "4",
                                            "1m30s", "100", "30s"}));

  ASSERT_EQ(Skiffctl({"put", "api", "img", "-m", "64Mi"}, /*json=*/true), 0) << err_.str();
  v1::Service parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.str(), &parsed).ok()) << out_.str();
  EXPECT_EQ(parsed.name(), "api");
  EXPECT_EQ(parsed.max_queue(), 100u);
  EXPECT_THAT(out_.str(), HasSubstr("\"minInstances\": 0"));  // zero values shown

  ASSERT_EQ(Skiffctl({"ls"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("api "));
  EXPECT_THAT(out_.str(), HasSubstr("web "));
  ASSERT_EQ(Skiffctl({"ls"}, true), 0);
  v1::ListServicesResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.str(), &list).ok());
  EXPECT_EQ(list.services_size(), 2);

  ASSERT_EQ(Skiffctl({"stats"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("DESIRED"));
  EXPECT_THAT(out_.str(), HasSubstr("pull(x): boom"));
  std::istringstream stats(out_.str());
  std::getline(stats, header);
  std::getline(stats, row);
  cols = absl::StrSplit(row, ' ', absl::SkipEmpty());
  EXPECT_EQ(cols, (std::vector<std::string>{"api", "2", "1", "0", "7", "3", "3", "4", "1234",
                                            "pull(x):", "boom"}));
  ASSERT_EQ(Skiffctl({"stats"}, true), 0);
  v1::ServiceStatsList slist;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.str(), &slist).ok());
  EXPECT_EQ(slist.services_size(), 2);

  EXPECT_EQ(Skiffctl({"rm", "api", "nope"}), 1);
  EXPECT_EQ(out_.str(), "api\n");
  EXPECT_THAT(err_.str(), HasSubstr("NOT_FOUND: service nope: not found"));
  EXPECT_EQ(activator_.List().size(), 1u);

  EXPECT_EQ(Skiffctl({"put", "Bad", "img"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("INVALID_ARGUMENT: service.name: \"Bad\""));
  EXPECT_EQ(Skiffctl({"put", "web"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("service put: want NAME IMAGE"));
  EXPECT_EQ(Skiffctl({"frobnicate"}), 2);
  EXPECT_EQ(Skiffctl({}), 2);
  EXPECT_EQ(Skiffctl({"stats", "--interval", "10ms"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("INVALID_ARGUMENT: interval: 10ms out of range"));
}

}  // namespace
}  // namespace skiff::agent
