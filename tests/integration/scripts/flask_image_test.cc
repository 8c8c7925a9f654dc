// The flask example image (scripts/images/flask/, built by scripts/images/build.sh --only
// flask) served for real: pushed to a local registry, run by the real skiffd + skiff-shim as
// a gen1 instance, answering GET / with "ok" and echoing POST bodies through gunicorn, then
// stopped gracefully by SIGTERM. Checks the host is left as it was. Prints the cold-start
// figures (CreateInstance → READY → first 200) for issue 3's benchmark.

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/common/unique_fd.h"
#include "skiff/v1/agent.grpc.pb.h"
#include "tests/support/host_state.h"
#include "tests/support/http_client.h"
#include "tests/support/registry.h"
#include "tests/support/skiffd_process.h"
#include "tests/support/status_matchers.h"

namespace skiff {
namespace {

using skiff::testing::HostState;
using skiff::testing::LocalRegistry;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A pool no other test uses, so its veths (sk-0ad600..) and routes identify this test.
constexpr char kIpPool[] = "10.214.0.0/24";
constexpr char kVethPrefix[] = "sk-0ad600";
constexpr char kPoolPrefix[] = "10.214.0.";

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Status FromGrpc(const grpc::Status& st) {
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
}

struct HttpReply {
  int status = 0;
  std::string headers;
  std::string body;
};

// One HTTP/1.0 request to ip:port over plain TCP (the connection closes after the reply).
absl::StatusOr<HttpReply> Http(const std::string& ip, uint32_t port, const std::string& method,
                               const std::string& body, absl::Duration timeout) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("not an IPv4 address: ", ip));
  }
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrCat("connect(", ip, ":", port, "): ", strerror(errno)));
  }
  std::string req = absl::StrCat(method, " / HTTP/1.0\r\nHost: flask\r\n");
  if (method == "POST") {
    absl::StrAppend(&req, "Content-Type: application/octet-stream\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&req, "\r\n", body);
  size_t off = 0;
  while (off < req.size()) {
    const ssize_t n = write(fd.get(), req.data() + off, req.size() - off);
    if (n <= 0) return absl::UnavailableError(absl::StrCat("write(", ip, "): ", strerror(errno)));
    off += static_cast<size_t>(n);
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd.get(), buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  if (n < 0) return absl::UnavailableError(absl::StrCat("read(", ip, "): ", strerror(errno)));
  const size_t end = resp.find("\r\n\r\n");
  const bool http = resp.compare(0, 9, "HTTP/1.1 ") == 0 || resp.compare(0, 9, "HTTP/1.0 ") == 0;
  if (end == std::string::npos || !http) {
    return absl::DataLossError(absl::StrCat("not an HTTP response: ", resp.substr(0, 200)));
  }
  HttpReply reply;
  reply.status = atoi(resp.substr(9, 3).c_str());
  reply.headers = resp.substr(0, end);
  reply.body = resp.substr(end + 4);
  return reply;
}

class FlaskImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = reg->release();
    const absl::Time t0 = absl::Now();
    absl::Status pushed = registry_->PushExampleImages({"flask"});
    ASSERT_TRUE(pushed.ok()) << pushed;
    std::cout << "build.sh --only flask (build or cache) + push: "
              << absl::FormatDuration(absl::Now() - t0) << "\n";
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    SKIFF_ASSERT_OK_AND_ASSIGN(before_, HostState::Capture());
    testing::SkiffdOptions opts;
    opts.insecure_registries = {registry_->address()};
    opts.ip_pool = kIpPool;
    opts.cgroup_parent = cgroup_parent_;
    opts.extra_flags = {"--node-vcpus-milli=2000",
                        absl::StrCat("--node-memory-bytes=", 2ull << 30)};
    SKIFF_ASSERT_OK_AND_ASSIGN(skiffd_, testing::SkiffdProcess::Create(opts));
    SKIFF_ASSERT_OK(skiffd_->Start());
    stub_ = &skiffd_->stub();
  }

  void TearDown() override {
    // Whatever a failed test left: delete every instance through the API (force kills).
    if (stub_ != nullptr) {
      grpc::ClientContext ctx;
      v1::ListInstancesResponse list;
      if (stub_->ListInstances(&ctx, v1::ListInstancesRequest(), &list).ok()) {
        for (const auto& inst : list.instances()) {
          grpc::ClientContext dctx;
          v1::DeleteInstanceRequest req;
          req.set_instance_id(inst.id());
          req.set_force(true);
          v1::DeleteInstanceResponse resp;
          EXPECT_TRUE(stub_->DeleteInstance(&dctx, req, &resp).ok()) << inst.id();
        }
      }
    }
    if (skiffd_ != nullptr) {
      SKIFF_EXPECT_OK(skiffd_->Stop());
    }
    stub_ = nullptr;
    // skiffd removes its empty cgroup parent; a leaked instance cgroup shows in the diff.
    for (const auto& entry : std::filesystem::directory_iterator("/sys/fs/cgroup")) {
      rmdir((entry.path().string() + "/" + cgroup_parent_).c_str());
    }
    auto after = HostState::Capture();
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(OwnDiff(skiff::testing::DiffHostState(before_, *after)), "");
  }

  // Only the differences this test can cause: its temp dir, veths, cgroups and pool routes.
  std::string OwnDiff(const std::string& diff) {
    std::string out;
    for (absl::string_view line : absl::StrSplit(diff, '\n')) {
      const std::string l(line);
      if ((skiffd_ != nullptr && l.find(skiffd_->root()) != std::string::npos) ||
          l.find(kVethPrefix) != std::string::npos || l.find(cgroup_parent_) != std::string::npos ||
          l.find(kPoolPrefix) != std::string::npos) {
        absl::StrAppend(&out, l, "\n");
      }
    }
    return out;
  }

  // Creates `id` and waits (WatchEvents) until READY or EXITED.
  absl::StatusOr<v1::Instance> CreateAndWait(const std::string& id, const v1::InstanceSpec& spec) {
    grpc::ClientContext wctx;
    wctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    v1::WatchEventsRequest wreq;
    wreq.set_instance_id(id);
    auto watch = stub_->WatchEvents(&wctx, wreq);
    watch->WaitForInitialMetadata();
    grpc::ClientContext ctx;
    v1::CreateInstanceRequest req;
    req.set_instance_id(id);
    *req.mutable_spec() = spec;
    v1::Instance inst;
    grpc::Status st = stub_->CreateInstance(&ctx, req, &inst);
    if (!st.ok()) {
      wctx.TryCancel();
      return FromGrpc(st);
    }
    bool done = inst.state() == v1::READY || inst.state() == v1::EXITED;
    v1::Event ev;
    while (!done && watch->Read(&ev)) {
      done = ev.type() == v1::Event::EXITED || ev.type() == v1::Event::READY;
    }
    wctx.TryCancel();
    watch->Finish().IgnoreError();
    return Get(id);
  }

  absl::StatusOr<v1::Instance> Get(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetInstanceRequest req;
    req.set_instance_id(id);
    v1::Instance inst;
    grpc::Status st = stub_->GetInstance(&ctx, req, &inst);
    if (!st.ok()) return FromGrpc(st);
    return inst;
  }

  absl::StatusOr<v1::Instance> Stop(const std::string& id, absl::Duration grace) {
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id(id);
    const int64_t ms = absl::ToInt64Milliseconds(grace);
    req.mutable_grace()->set_seconds(ms / 1000);
    req.mutable_grace()->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
    v1::Instance inst;
    grpc::Status st = stub_->StopInstance(&ctx, req, &inst);
    if (!st.ok()) return FromGrpc(st);
    return inst;
  }

  std::string Logs(const std::string& id) {
    grpc::ClientContext ctx;
    v1::StreamLogsRequest req;
    req.set_instance_id(id);
    auto reader = stub_->StreamLogs(&ctx, req);
    std::string out;
    v1::LogEntry e;
    while (reader->Read(&e)) absl::StrAppend(&out, e.line(), "\n");
    reader->Finish().IgnoreError();
    return out;
  }

  static LocalRegistry* registry_;
  const std::string cgroup_parent_ = absl::StrCat("skiff-flask-test-", getpid());
  HostState before_;
  std::unique_ptr<testing::SkiffdProcess> skiffd_;
  v1::Agent::Stub* stub_ = nullptr;  // skiffd_'s
};

LocalRegistry* FlaskImageTest::registry_ = nullptr;

TEST_F(FlaskImageTest, ServesGetAndEchoesPostThenStopsGracefully) {
  v1::InstanceSpec spec;
  spec.set_image(registry_->Reference("flask"));
  spec.set_memory_bytes(256 << 20);
  spec.set_vcpus_milli(1000);
  spec.mutable_termination_grace()->set_seconds(10);

  // Pull the image first (first-create pays the pull and unpack; not part of cold start).
  {
    const absl::Time t0 = absl::Now();
    grpc::ClientContext ctx;
    v1::PullImageRequest req;
    req.set_image(spec.image());
    auto reader = stub_->PullImage(&ctx, req);
    v1::PullProgress p;
    while (reader->Read(&p)) {
    }
    SKIFF_ASSERT_OK(FromGrpc(reader->Finish()));
    std::cout << "PullImage(flask): " << absl::FormatDuration(absl::Now() - t0) << "\n";
  }

  const absl::Time create = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("flask-1", spec));
  const absl::Time ready = absl::Now();
  ASSERT_EQ(inst.state(), v1::READY) << inst.DebugString() << "\nlogs:\n" << Logs("flask-1");
  ASSERT_THAT(inst.ip(), StartsWith(kPoolPrefix));
  ASSERT_EQ(inst.port(), 8080u);

  // The first request right after READY: gunicorn's master listens before its worker has
  // imported the app, so this also measures the worker's start.
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpReply first,
                             Http(inst.ip(), inst.port(), "GET", "", absl::Seconds(30)));
  const absl::Time first_200 = absl::Now();
  EXPECT_EQ(first.status, 200) << first.headers;
  EXPECT_EQ(first.body, "ok");
  EXPECT_THAT(first.headers, HasSubstr("gunicorn"));
  const absl::Time started_at = ToTime(inst.started_at());
  std::cout << "flask cold start: CreateInstance->READY " << absl::FormatDuration(ready - create)
            << ", CreateInstance->first 200 " << absl::FormatDuration(first_200 - create)
            << ", entrypoint started_at->first 200 " << absl::FormatDuration(first_200 - started_at)
            << ", created_at->ready_at "
            << absl::FormatDuration(ToTime(inst.ready_at()) - ToTime(inst.created_at())) << "\n";
  EXPECT_GE(first_200, started_at);

  // POST bodies come back byte for byte: text, binary (every byte value), and 1 MiB.
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  std::string large(1 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 7919) >> 3);
  for (const std::string& body : {std::string("hello skiff"), binary, large}) {
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpReply echo,
                               Http(inst.ip(), inst.port(), "POST", body, absl::Seconds(10)));
    EXPECT_EQ(echo.status, 200) << echo.headers;
    EXPECT_EQ(echo.body.size(), body.size());
    EXPECT_TRUE(echo.body == body) << "echo differs for a " << body.size() << "-byte body";
  }
  // An empty POST echoes nothing; an unknown method is refused by Flask.
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpReply empty,
                             Http(inst.ip(), inst.port(), "POST", "", absl::Seconds(10)));
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpReply del,
                             Http(inst.ip(), inst.port(), "DELETE", "", absl::Seconds(10)));
  EXPECT_EQ(del.status, 405);

  // gunicorn logs its start to stderr, which reaches StreamLogs: one worker, threaded.
  const std::string logs = Logs("flask-1");
  EXPECT_THAT(logs, HasSubstr("Listening at: http://0.0.0.0:8080"));
  EXPECT_THAT(logs, HasSubstr("Using worker: threads"));  // --threads 8: gthread
  size_t workers = 0;
  for (size_t at = 0; (at = logs.find("Booting worker with pid", at)) != std::string::npos; ++at) {
    ++workers;
  }
  EXPECT_EQ(workers, 1u) << logs;  // --workers 1

  // SIGTERM: gunicorn shuts its worker down and exits 0 well within the grace.
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance stopped, Stop("flask-1", absl::Seconds(10)));
  const absl::Duration stop_took = absl::Now() - t0;
  std::cout << "StopInstance(flask, SIGTERM) until EXITED: " << absl::FormatDuration(stop_took)
            << "\n";
  EXPECT_EQ(stopped.state(), v1::EXITED);
  EXPECT_EQ(stopped.exit().reason(), v1::STOPPED) << stopped.DebugString();
  EXPECT_EQ(stopped.exit().code(), 0) << stopped.DebugString();
  EXPECT_LT(stop_took, absl::Seconds(8));
  EXPECT_THAT(Logs("flask-1"), HasSubstr("Shutting down: Master"));

  grpc::ClientContext dctx;
  v1::DeleteInstanceRequest dreq;
  dreq.set_instance_id("flask-1");
  v1::DeleteInstanceResponse dresp;
  SKIFF_EXPECT_OK(FromGrpc(stub_->DeleteInstance(&dctx, dreq, &dresp)));
}

// The seed platform's example as a service: no instance until the first request arrives
// at the ingress, which starts one (a cold start, pull included) and holds the request
// until it is Ready; POST bodies come back through the proxy.
TEST_F(FlaskImageTest, ServedThroughTheIngressFromZero) {
  // This test's skiffd serves the ingress (which also throttles CPU between requests).
  SKIFF_ASSERT_OK(skiffd_->Stop());
  testing::SkiffdOptions opts = skiffd_->options();
  opts.ingress = true;
  SKIFF_ASSERT_OK_AND_ASSIGN(skiffd_, testing::SkiffdProcess::Create(opts));
  SKIFF_ASSERT_OK(skiffd_->Start());
  stub_ = &skiffd_->stub();

  v1::Service service;
  service.set_name("flask");
  v1::InstanceSpec* spec = service.mutable_template_();
  spec->set_image(registry_->Reference("flask"));
  spec->set_memory_bytes(256 << 20);
  spec->set_vcpus_milli(1000);
  spec->set_concurrency(8);  // gunicorn --threads 8
  service.set_min_instances(0);
  service.set_max_instances(1);
  {
    grpc::ClientContext ctx;
    v1::PutServiceRequest req;
    *req.mutable_service() = service;
    v1::Service out;
    SKIFF_ASSERT_OK(FromGrpc(stub_->PutService(&ctx, req, &out)));
  }
  const uint16_t port = skiffd_->ingress_port();
  const std::string host = absl::StrCat("flask.", opts.node_domain);
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(testing::ClientResponse first,
                             testing::HttpRequest(port, "POST", "/", host, {}, "hello skiff"));
  std::cout << "flask through the ingress from zero (pull + start + first request): "
            << absl::FormatDuration(absl::Now() - t0) << "\n";
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.body, "hello skiff");
  std::string large(1 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 7919) >> 3);
  SKIFF_ASSERT_OK_AND_ASSIGN(testing::HttpConnection conn,
                             testing::HttpConnection::Connect("127.0.0.1", port));
  const absl::Time e0 = absl::Now();
  for (int i = 0; i < 5; ++i) {
    SKIFF_ASSERT_OK_AND_ASSIGN(testing::ClientResponse echo,
                               conn.Request("POST", "/", host, {}, large));
    EXPECT_EQ(echo.status, 200);
    EXPECT_TRUE(echo.body == large) << "echo " << i << " differs";
  }
  std::cout << "5 x 1 MiB echoed through the ingress: " << absl::FormatDuration(absl::Now() - e0)
            << "\n";
  SKIFF_ASSERT_OK_AND_ASSIGN(testing::ClientResponse get, conn.Request("GET", "/", host));
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "ok");
  // Exactly one instance was started for it.
  grpc::ClientContext lctx;
  v1::ListInstancesRequest lreq;
  lreq.set_label_selector("skiff.service=flask");
  v1::ListInstancesResponse list;
  SKIFF_ASSERT_OK(FromGrpc(stub_->ListInstances(&lctx, lreq, &list)));
  EXPECT_EQ(list.instances_size(), 1);
  grpc::ClientContext dctx;
  v1::DeleteServiceRequest dreq;
  dreq.set_name("flask");
  v1::DeleteServiceResponse dresp;
  const absl::Time d0 = absl::Now();
  SKIFF_EXPECT_OK(FromGrpc(stub_->DeleteService(&dctx, dreq, &dresp)));
  std::cout << "DeleteService(flask) (drain, SIGTERM, exit, delete): "
            << absl::FormatDuration(absl::Now() - d0) << "\n";
}

}  // namespace
}  // namespace skiff
