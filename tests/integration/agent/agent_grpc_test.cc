// Every Agent RPC through a real gRPC client and server (Unix socket), over fakes.

#include <sys/stat.h>

#include <thread>

#include "google/protobuf/util/time_util.h"
#include "tests/integration/agent/agent_server_fixture.h"

namespace skiff::agent {
namespace {

using testing::AgentServerTest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kHelloImage;
using ::testing::StartsWith;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

class AgentGrpcTest : public AgentServerTest {
 protected:
  grpc::Status Create(const std::string& id, const v1::InstanceSpec& spec, v1::Instance* out) {
    grpc::ClientContext ctx;
    v1::CreateInstanceRequest req;
    req.set_instance_id(id);
    *req.mutable_spec() = spec;
    return stub_->CreateInstance(&ctx, req, out);
  }
  grpc::Status Get(const std::string& id, v1::Instance* out) {
    grpc::ClientContext ctx;
    v1::GetInstanceRequest req;
    req.set_instance_id(id);
    return stub_->GetInstance(&ctx, req, out);
  }
  v1::Node Node() {
    grpc::ClientContext ctx;
    v1::Node node;
    EXPECT_TRUE(stub_->GetNode(&ctx, v1::GetNodeRequest(), &node).ok());
    return node;
  }
  std::vector<std::string> ListIds(const std::string& selector) {
    grpc::ClientContext ctx;
    v1::ListInstancesRequest req;
    req.set_label_selector(selector);
    v1::ListInstancesResponse resp;
    EXPECT_TRUE(stub_->ListInstances(&ctx, req, &resp).ok());
    std::vector<std::string> ids;
    for (const auto& i : resp.instances()) ids.push_back(i.id());
    return ids;
  }
  void ExpectNothingLeft(const std::string& id) {
    v1::Instance inst;
    const grpc::StatusCode code = Get(id, &inst).error_code();
    EXPECT_TRUE(code == grpc::StatusCode::NOT_FOUND || code == grpc::StatusCode::INVALID_ARGUMENT)
        << code;
    EXPECT_FALSE(Exists(Dir(id)));
    v1::Node node = Node();
    EXPECT_EQ(node.vcpus_milli_allocated(), 0u);
    EXPECT_EQ(node.memory_bytes_allocated(), 0u);
    EXPECT_EQ(node.instances_total(), 0u);
    EXPECT_EQ(pool_->in_use(), 0u);
  }
};

TEST_F(AgentGrpcTest, LifecycleThroughEveryInstanceRpc) {
  v1::InstanceSpec spec = Spec();
  (*spec.mutable_labels())["service"] = "hello";
  v1::Instance inst;
  ASSERT_TRUE(Create("hello-1", spec, &inst).ok());
  EXPECT_EQ(inst.state(), v1::STARTED);
  EXPECT_EQ(inst.port(), 8080u);
  EXPECT_EQ(inst.ip(), "10.88.0.3");
  ASSERT_TRUE(Get("hello-1", &inst).ok());
  EXPECT_EQ(inst.spec().labels().at("service"), "hello");
  EXPECT_THAT(ListIds(""), ElementsAre("hello-1"));
  EXPECT_THAT(ListIds("service=hello"), ElementsAre("hello-1"));
  EXPECT_TRUE(ListIds("service!=hello").empty());
  v1::Node node = Node();
  EXPECT_EQ(node.vcpus_milli_capacity(), 2000u);
  EXPECT_EQ(node.vcpus_milli_allocated(), 1000u);
  EXPECT_EQ(node.memory_bytes_allocated(), 128u << 20);
  EXPECT_EQ(node.instances_by_state().at("STARTED"), 1u);
  EXPECT_FALSE(node.hostname().empty());

  {
    grpc::ClientContext ctx;
    v1::DeleteInstanceRequest req;
    req.set_instance_id("hello-1");
    v1::DeleteInstanceResponse resp;
    grpc::Status st = stub_->DeleteInstance(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(st.error_message(), StartsWith("instance_id: hello-1 is STARTED"));
  }
  {
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id("hello-1");
    req.mutable_grace()->set_seconds(2);
    ASSERT_TRUE(stub_->StopInstance(&ctx, req, &inst).ok());
    EXPECT_EQ(inst.state(), v1::EXITED);
    EXPECT_EQ(inst.exit().reason(), v1::STOPPED);
    EXPECT_EQ(runtime_.shim(Dir("hello-1"))->last_stop_grace(), absl::Seconds(2));
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteInstanceRequest req;
    req.set_instance_id("hello-1");
    v1::DeleteInstanceResponse resp;
    ASSERT_TRUE(stub_->DeleteInstance(&ctx, req, &resp).ok());
  }
  ExpectNothingLeft("hello-1");
}

TEST_F(AgentGrpcTest, IdempotentCreate) {
  v1::Instance a, b;
  ASSERT_TRUE(Create("same", Spec(), &a).ok());
  ASSERT_TRUE(Create("same", Spec(), &b).ok());
  EXPECT_EQ(a.created_at().nanos(), b.created_at().nanos());
  EXPECT_EQ(runtime_.launches(), 1);
  v1::InstanceSpec other = Spec();
  other.set_memory_bytes(64 << 20);
  grpc::Status st = Create("same", other, &b);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(st.error_message(), StartsWith("instance_id: same"));
  EXPECT_EQ(Node().instances_total(), 1u);
}

TEST_F(AgentGrpcTest, BadInputsNameTheFieldAndLeaveNothing) {
  struct Case {
    std::string id;
    std::function<void(v1::InstanceSpec*)> mutate;
    grpc::StatusCode code;
    std::string prefix;
  };
  const std::vector<Case> cases = {
      {"x", [](auto* s) { s->set_memory_bytes(0); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.memory_bytes: must be > 0"},
      {"x", [](auto* s) { s->set_port(70000); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.port: 70000 out of range 1..65535"},
      {"x", [](auto* s) { s->set_vcpus_milli(3000); }, grpc::StatusCode::RESOURCE_EXHAUSTED,
       "spec.vcpus_milli: 3000 exceeds"},
      {"x", [](auto* s) { s->set_memory_bytes(3ull << 30); }, grpc::StatusCode::RESOURCE_EXHAUSTED,
       "spec.memory_bytes: "},
      {"x", [](auto* s) { s->set_image("127.0.0.1:5000/missing:1"); }, grpc::StatusCode::NOT_FOUND,
       "spec.image: "},
      {"x", [](auto* s) { s->set_image("unreachable.invalid/x:1"); }, grpc::StatusCode::UNAVAILABLE,
       "spec.image: "},
      {"x", [](auto* s) { s->set_image("UPPER/case"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.image: "},
      {"x", [](auto* s) { s->clear_image(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.image: required"},
      {"x", [](auto* s) { s->set_concurrency(5000); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.concurrency: "},
      {"Bad/Id", [](auto*) {}, grpc::StatusCode::INVALID_ARGUMENT, "instance_id: "},
      {"x", [](auto* s) { (*s->mutable_env())["A=B"] = "1"; }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.env["},
  };
  for (const Case& c : cases) {
    v1::InstanceSpec spec = Spec();
    c.mutate(&spec);
    v1::Instance inst;
    grpc::Status st = Create(c.id, spec, &inst);
    EXPECT_EQ(st.error_code(), c.code) << c.prefix << " got " << st.error_message();
    EXPECT_THAT(st.error_message(), StartsWith(c.prefix));
    ExpectNothingLeft(c.id);
  }
  runtime_.FailNextLaunch(absl::FailedPreconditionError("pivot_root(/x): EINVAL"));
  v1::Instance inst;
  grpc::Status st = Create("x", Spec(), &inst);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "start instance x: pivot_root(/x): EINVAL");
  ExpectNothingLeft("x");

  // Bad ids and args on the other RPCs.
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(Get("", &inst).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Get("../etc", &inst).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Get("nope", &inst).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    ASSERT_TRUE(Create("g", Spec(), &inst).ok());
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id("g");
    req.mutable_grace()->set_seconds(-1);
    st = stub_->StopInstance(&ctx, req, &inst);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), StartsWith("grace: "));
  }
  {
    grpc::ClientContext ctx;
    v1::ListInstancesRequest req;
    req.set_label_selector("a=b=c");
    v1::ListInstancesResponse resp;
    st = stub_->ListInstances(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), StartsWith("label_selector: "));
  }
}

TEST_F(AgentGrpcTest, WatchEventsDeliversInOrder) {
  grpc::ClientContext wctx;
  auto reader = stub_->WatchEvents(&wctx, v1::WatchEventsRequest());
  reader->WaitForInitialMetadata();
  v1::Instance inst;
  ASSERT_TRUE(Create("ev", Spec(), &inst).ok());
  runtime_.shim(Dir("ev"))->MoveTo(v1::shim::READY);
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(100));
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id("ev");
    v1::Instance out;
    EXPECT_TRUE(stub_->StopInstance(&ctx, req, &out).ok());
  });
  std::vector<v1::Event::Type> types;
  uint64_t last_seq = 0;
  v1::Event ev;
  while (reader->Read(&ev)) {
    EXPECT_EQ(ev.instance_id(), "ev");
    EXPECT_EQ(ev.sequence(), last_seq + 1);
    last_seq = ev.sequence();
    types.push_back(ev.type());
    if (ev.type() == v1::Event::EXITED) {
      EXPECT_EQ(ev.exit().reason(), v1::STOPPED);
      break;
    }
  }
  stopper.join();
  wctx.TryCancel();
  reader->Finish();
  EXPECT_THAT(types, ElementsAre(v1::Event::CREATED, v1::Event::STARTED, v1::Event::READY,
                                 v1::Event::STOPPING, v1::Event::EXITED));
}

TEST_F(AgentGrpcTest, StreamLogsWithAndWithoutFollow) {
  v1::Instance inst;
  ASSERT_TRUE(Create("logs", Spec(), &inst).ok());
  auto shim = runtime_.shim(Dir("logs"));
  shim->AppendLog(false, false, "first");
  shim->AppendLog(true, true, "err-part");
  shim->AppendLog(true, false, "ial");
  {
    grpc::ClientContext ctx;
    v1::StreamLogsRequest req;
    req.set_instance_id("logs");
    auto reader = stub_->StreamLogs(&ctx, req);
    std::vector<std::string> lines;
    v1::LogEntry e;
    while (reader->Read(&e)) lines.push_back(e.line());
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_THAT(lines, ElementsAre("first", "err-part", "ial"));
  }
  // Follow: sees lines written later, ends when the instance exits.
  grpc::ClientContext ctx;
  v1::StreamLogsRequest req;
  req.set_instance_id("logs");
  req.set_follow(true);
  auto reader = stub_->StreamLogs(&ctx, req);
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    shim->AppendLog(false, false, "later");
    absl::SleepFor(absl::Milliseconds(300));
    shim->AppendLog(false, false, "last words");
    shim->Exit(0, 0, v1::COMPLETED);
  });
  std::vector<std::pair<std::string, v1::LogEntry::Stream>> got;
  v1::LogEntry e;
  while (reader->Read(&e)) got.emplace_back(e.line(), e.stream());
  writer.join();
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[1].second, v1::LogEntry::STDERR);
  EXPECT_EQ(got[3].first, "later");
  EXPECT_EQ(got[4].first, "last words");

  grpc::ClientContext nctx;
  v1::StreamLogsRequest nreq;
  nreq.set_instance_id("nope");
  auto nreader = stub_->StreamLogs(&nctx, nreq);
  while (nreader->Read(&e)) {
  }
  EXPECT_EQ(nreader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AgentGrpcTest, ImagesPullListRemove) {
  for (bool store_reports_done : {false, true}) {
    images_.set_report_done(store_reports_done);
    grpc::ClientContext ctx;
    v1::PullImageRequest req;
    req.set_image(kHelloImage);
    auto reader = stub_->PullImage(&ctx, req);
    std::vector<std::string> phases;
    v1::PullProgress p;
    while (reader->Read(&p)) phases.push_back(p.phase());
    ASSERT_TRUE(reader->Finish().ok());
    // One final "done" either way.
    EXPECT_THAT(phases, ElementsAre("resolving", "fetching", "unpacking", "done"));
    EXPECT_TRUE(p.done());
    EXPECT_THAT(p.digest(), StartsWith("sha256:"));
  }
  {
    grpc::ClientContext ctx;
    v1::PullImageRequest req;
    req.set_image("127.0.0.1:5000/missing:1");
    auto reader = stub_->PullImage(&ctx, req);
    v1::PullProgress p;
    while (reader->Read(&p)) {
    }
    grpc::Status st = reader->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(st.error_message(), HasSubstr("127.0.0.1:5000/missing:1"));
  }
  v1::ListImagesResponse list;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListImages(&ctx, v1::ListImagesRequest(), &list).ok());
    ASSERT_EQ(list.images_size(), 1);
    EXPECT_THAT(list.images(0).references(), ElementsAre(kHelloImage));
    EXPECT_EQ(list.images(0).layers(), 1u);
    EXPECT_EQ(list.images(0).size_bytes(), 1234u);
  }
  v1::Instance inst;
  ASSERT_TRUE(Create("user", Spec(), &inst).ok());
  auto remove = [&](const std::string& ref) {
    grpc::ClientContext ctx;
    v1::RemoveImageRequest req;
    req.set_image(ref);
    v1::RemoveImageResponse resp;
    return stub_->RemoveImage(&ctx, req, &resp);
  };
  EXPECT_EQ(remove(kHelloImage).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(remove("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id("user");
    ASSERT_TRUE(stub_->StopInstance(&ctx, req, &inst).ok());
  }
  EXPECT_TRUE(remove(list.images(0).digest()).ok());
  EXPECT_EQ(remove(kHelloImage).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace skiff::agent
