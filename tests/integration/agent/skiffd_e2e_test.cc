// End to end: the real skiffd binary with the real skiff-shim, pulling from a real local
// registry (docker-registry) and running gen1 instances; driven over gRPC like the
// scheduler does. Checks the host is left as it was (mounts, cgroups, links).

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/ingress/cpu_latency.h"
#include "sandbox/common/net.h"
#include "skiff/v1/agent.grpc.pb.h"
#include "tests/support/host_state.h"
#include "tests/support/registry.h"
#include "tests/support/shell.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent {
namespace {

using skiff::testing::HostState;
using skiff::testing::LocalRegistry;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A pool no other test uses, so veth names (sk-0ad5....) identify this test's links.
constexpr char kIpPool[] = "10.213.0.0/24";
constexpr char kVethPrefix[] = "sk-0ad500";
constexpr char kPoolPrefix[] = "10.213.0.";

// Whether the host's main table has `unreachable <kIpPool>`.
bool PoolRouteInstalled() {
  absl::StatusOr<std::vector<RouteInfo>> routes = ListRoutes();
  EXPECT_TRUE(routes.ok()) << routes.status();
  if (!routes.ok()) return false;
  for (const RouteInfo& r : *routes) {
    if (r.dst == kIpPool && r.type == "unreachable") return true;
  }
  return false;
}

// Exists and is not a zombie (a killed process may wait a moment for its reaper).
bool RunningProcess(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string BuildDir() {
  const char* d = getenv("SKIFF_BUILD_DIR");
  return d != nullptr ? d : ".";
}

// GET / from ip:port over plain TCP; the response (headers + body) or an error.
absl::StatusOr<std::string> HttpGet(const std::string& ip, uint32_t port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  timeval tv = {3, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrCat("connect(", ip, ":", port, "): ", strerror(errno)));
  }
  const std::string req = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
  if (write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    return absl::UnavailableError("write");
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd.get(), buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  return resp;
}

class SkiffdE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = reg->release();
    absl::Status pushed = registry_->PushExampleImages(
        {"hello", "sigterm-ignorer", "sigterm-handler", "job", "memhog", "forker"});
    ASSERT_TRUE(pushed.ok()) << pushed;
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    before_ = *HostState::Capture();
    state_dir_ = tmp_.path() + "/state";
    socket_ = tmp_.path() + "/skiffd.sock";
    StartSkiffd();
  }

  void TearDown() override {
    // Whatever a failed test left: stop and delete every instance through the API.
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
    StopSkiffd();
    // The parent group skiffd's shims created below every hierarchy (empty if no instance
    // cgroup leaked; a leak makes rmdir fail and shows in the diff).
    for (const auto& entry : std::filesystem::directory_iterator("/sys/fs/cgroup")) {
      rmdir((entry.path().string() + "/" + cgroup_parent_).c_str());
    }
    auto after = HostState::Capture();
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(OwnDiff(skiff::testing::DiffHostState(before_, *after)), "");
  }

  // Only the differences this test can cause: its state dir, its veths, its cgroups.
  std::string OwnDiff(const std::string& diff) {
    std::string out;
    for (absl::string_view line : absl::StrSplit(diff, '\n')) {
      const std::string l(line);
      if (l.find(tmp_.path()) != std::string::npos || l.find(kVethPrefix) != std::string::npos ||
          l.find(cgroup_parent_) != std::string::npos || l.find(kPoolPrefix) != std::string::npos) {
        absl::StrAppend(&out, l, "\n");
      }
    }
    return out;
  }

  void StartSkiffd() {
    const std::string bin = BuildDir() + "/agent/skiffd";
    std::vector<std::string> args = {bin, "--socket", socket_, "--state-dir", state_dir_,
                                     "--image-root", tmp_.path() + "/images", "--insecure-registry",
                                     registry_->address(), "--ip-pool", kIpPool,
                                     "--node-vcpus-milli", "2000", "--node-memory-bytes",
                                     std::to_string(2ull << 30), "--cgroup-parent", cgroup_parent_,
                                     // No ingress: the instances keep their full CPU quota.
                                     "--ingress-listen=", "--admin-listen="};
    args.insert(args.end(), extra_flags_.begin(), extra_flags_.end());
    const std::string log = tmp_.path() + "/skiffd.log";
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    ASSERT_GT(pid_, 0);
    struct stat st;
    for (int i = 0; i < 200 && stat(socket_.c_str(), &st) != 0; ++i) {
      absl::SleepFor(absl::Milliseconds(25));
    }
    ASSERT_EQ(stat(socket_.c_str(), &st), 0) << "skiffd did not start; see " << log;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    stub_ = v1::Agent::NewStub(
        grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
  }

  // SIGTERM: skiffd joins its threads and exits 0 within a second, leaving instances
  // running.
  void StopSkiffd() {
    stub_.reset();
    if (pid_ <= 0) return;
    const absl::Time t0 = absl::Now();
    kill(pid_, SIGTERM);
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && absl::Now() - t0 < absl::Seconds(1)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    last_stop_took_ = absl::Now() - t0;
    EXPECT_EQ(r, pid_) << "skiffd still running 1 s after SIGTERM; see " << tmp_.path()
                       << "/skiffd.log";
    if (r == 0) waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    pid_ = -1;
    struct stat st;
    EXPECT_NE(stat(socket_.c_str(), &st), 0) << "socket not removed";
  }

  v1::InstanceSpec Spec(const std::string& image) {
    v1::InstanceSpec spec;
    spec.set_image(registry_->Reference(image));
    spec.set_memory_bytes(64 << 20);
    spec.set_vcpus_milli(500);
    return spec;
  }

  // Creates `id` and waits (WatchEvents) until READY, or EXITED for a job.
  // With `fresh`, the events of the new instance are collected in events_ (they are
  // published even when CreateInstance already returns READY).
  absl::StatusOr<v1::Instance> CreateAndWait(const std::string& id, const v1::InstanceSpec& spec,
                                             bool fresh = true) {
    grpc::ClientContext wctx;
    wctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
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
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
    }
    const bool job = spec.kind() == v1::JOB;
    bool done = !fresh && (inst.state() == v1::EXITED || (!job && inst.state() == v1::READY));
    v1::Event ev;
    events_.clear();
    while (!done && watch->Read(&ev)) {
      events_.push_back(ev.type());
      done = ev.type() == v1::Event::EXITED || (!job && ev.type() == v1::Event::READY);
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
    if (!st.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
    }
    return inst;
  }

  absl::StatusOr<v1::Instance> Stop(const std::string& id, std::optional<int64_t> grace_ms) {
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id(id);
    if (grace_ms) {
      req.mutable_grace()->set_seconds(*grace_ms / 1000);
      req.mutable_grace()->set_nanos(static_cast<int32_t>(*grace_ms % 1000) * 1000000);
    }
    v1::Instance inst;
    grpc::Status st = stub_->StopInstance(&ctx, req, &inst);
    if (!st.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
    }
    return inst;
  }

  grpc::Status Delete(const std::string& id) {
    grpc::ClientContext ctx;
    v1::DeleteInstanceRequest req;
    req.set_instance_id(id);
    v1::DeleteInstanceResponse resp;
    return stub_->DeleteInstance(&ctx, req, &resp);
  }

  std::vector<std::string> Logs(const std::string& id) {
    grpc::ClientContext ctx;
    v1::StreamLogsRequest req;
    req.set_instance_id(id);
    auto reader = stub_->StreamLogs(&ctx, req);
    std::vector<std::string> lines;
    v1::LogEntry e;
    while (reader->Read(&e)) lines.push_back(e.line());
    reader->Finish().IgnoreError();
    return lines;
  }

  static LocalRegistry* registry_;
  agent::testing::TempDir tmp_;
  const std::string cgroup_parent_ = absl::StrCat("skiff-agent-e2e-", getpid());
  HostState before_;
  std::string state_dir_;
  std::string socket_;
  pid_t pid_ = -1;
  std::vector<std::string> extra_flags_;  // appended to StartSkiffd's command line
  absl::Duration last_stop_took_;
  std::unique_ptr<v1::Agent::Stub> stub_;
  std::vector<v1::Event::Type> events_;
};

LocalRegistry* SkiffdE2eTest::registry_ = nullptr;

TEST_F(SkiffdE2eTest, HelloAnswersHttpThenStopsAndLeavesNothing) {
  const absl::Time before = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-hello", Spec("hello")));
  const absl::Duration wall = absl::Now() - before;
  ASSERT_EQ(inst.state(), v1::READY) << inst.DebugString();
  // Timestamps to the nanosecond: created_at is not rounded down to the second.
  const absl::Duration created_to_ready = ToTime(inst.ready_at()) - ToTime(inst.created_at());
  EXPECT_GE(ToTime(inst.created_at()), before);
  EXPECT_GT(created_to_ready, absl::ZeroDuration());
  EXPECT_LT(created_to_ready, wall) << "create+ready took " << wall;
  std::cout << "created_at->ready_at " << absl::FormatDuration(created_to_ready)
            << ", create until READY " << absl::FormatDuration(wall) << "\n";
  EXPECT_THAT(events_,
              ::testing::ElementsAre(v1::Event::CREATED, v1::Event::STARTED, v1::Event::READY));
  EXPECT_THAT(inst.ip(), StartsWith("10.213.0."));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string resp, HttpGet(inst.ip(), inst.port()));
  EXPECT_THAT(resp, HasSubstr("hello from skiff"));
  {
    // A second skiffd on the same state dir refuses to start (and leaves the socket).
    const std::string bin = BuildDir() + "/agent/skiffd";
    const std::string cmd = bin + " --socket " + tmp_.path() + "/second.sock --state-dir " +
                            state_dir_ + " --image-root " + tmp_.path() + "/images >" +
                            tmp_.path() + "/second.log 2>&1";
    const int rc = system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 1) << rc;
    struct stat st;
    EXPECT_EQ(stat(socket_.c_str(), &st), 0);
  }
  // The instance's stdout (httpd -v logs the request) reaches StreamLogs.
  absl::SleepFor(absl::Milliseconds(200));
  bool logged = false;
  for (const auto& l : Logs("e2e-hello")) logged |= l.find("response:200") != std::string::npos;
  EXPECT_TRUE(logged);

  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(inst, Stop("e2e-hello", std::nullopt));
  EXPECT_EQ(inst.state(), v1::EXITED);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));  // httpd dies of SIGTERM at once
  EXPECT_TRUE(Delete("e2e-hello").ok());
  struct stat st;
  EXPECT_NE(stat((state_dir_ + "/instances/e2e-hello").c_str(), &st), 0);
}

TEST_F(SkiffdE2eTest, SigtermHandlerExitsZeroAndLogsFollowInOrder) {
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-term", Spec("sigterm-handler")));
  ASSERT_EQ(inst.state(), v1::READY);
  // logs -f from the start, ended by the exit.
  std::vector<std::string> followed;
  grpc::ClientContext lctx;
  v1::StreamLogsRequest lreq;
  lreq.set_instance_id("e2e-term");
  lreq.set_follow(true);
  auto reader = stub_->StreamLogs(&lctx, lreq);
  std::thread follower([&] {
    v1::LogEntry e;
    while (reader->Read(&e)) followed.push_back(e.line());
  });
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance stopped, Stop("e2e-term", std::nullopt));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));  // not the 10 s grace
  EXPECT_EQ(stopped.exit().reason(), v1::STOPPED);
  EXPECT_EQ(stopped.exit().code(), 0);
  follower.join();
  EXPECT_TRUE(reader->Finish().ok());
  auto find = [&](const std::string& needle) {
    for (size_t i = 0; i < followed.size(); ++i) {
      if (followed[i].find(needle) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  };
  const int listening = find("sigterm-handler: listening on 8080");
  const int got_term = find("got SIGTERM");
  EXPECT_GE(listening, 0);
  EXPECT_GT(got_term, listening);
  EXPECT_TRUE(Delete("e2e-term").ok());
}

TEST_F(SkiffdE2eTest, RestartKeepsInstancesRunningAndStoppable) {
  v1::InstanceSpec spec = Spec("sigterm-ignorer");
  (*spec.mutable_labels())["service"] = "ign";
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-ign", spec));
  ASSERT_EQ(inst.state(), v1::READY);
  const int pid = inst.pid();
  // The instance runs in <cgroup-parent>/<id>.
  std::ifstream procs("/sys/fs/cgroup/memory/" + cgroup_parent_ + "/e2e-ign/cgroup.procs");
  std::string first_pid;
  procs >> first_pid;
  EXPECT_FALSE(first_pid.empty());
  StopSkiffd();  // instances stay
  EXPECT_EQ(kill(pid, 0), 0) << "instance died with skiffd";
  StartSkiffd();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance again, Get("e2e-ign"));
  EXPECT_EQ(again.state(), v1::READY);
  EXPECT_EQ(again.pid(), pid);
  EXPECT_EQ(again.ip(), inst.ip());
  EXPECT_EQ(again.spec().labels().at("service"), "ign");
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string resp, HttpGet(again.ip(), again.port()));
  EXPECT_THAT(resp, HasSubstr("hello from skiff"));
  {
    grpc::ClientContext ctx;
    v1::Node node;
    ASSERT_TRUE(stub_->GetNode(&ctx, v1::GetNodeRequest(), &node).ok());
    EXPECT_EQ(node.vcpus_milli_allocated(), 500u);
    EXPECT_EQ(node.instances_by_state().at("READY"), 1u);
  }
  // The ignorer is SIGKILLed when the 2 s grace ends.
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance stopped, Stop("e2e-ign", 2000));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_EQ(stopped.exit().reason(), v1::KILLED);
  EXPECT_EQ(stopped.exit().signal(), SIGKILL);
  EXPECT_GE(took, absl::Milliseconds(1800));
  EXPECT_LE(took, absl::Milliseconds(2600));
  EXPECT_TRUE(Delete("e2e-ign").ok());
}

TEST_F(SkiffdE2eTest, DefaultGraceIsTenSecondsThenSigkill) {
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst,
                             CreateAndWait("e2e-grace", Spec("sigterm-ignorer")));
  ASSERT_EQ(inst.state(), v1::READY);
  EXPECT_EQ(inst.spec().termination_grace().seconds(), 10);
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance stopped, Stop("e2e-grace", std::nullopt));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_EQ(stopped.exit().reason(), v1::KILLED);
  EXPECT_GE(took, absl::Milliseconds(9800));
  EXPECT_LE(took, absl::Milliseconds(10600));
  EXPECT_TRUE(Delete("e2e-grace").ok());
}

TEST_F(SkiffdE2eTest, ForkerAndAllItsChildrenAreKilledAtTheGrace) {
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-fork", Spec("forker")));
  ASSERT_EQ(inst.state(), v1::READY);
  std::vector<pid_t> pids;
  std::ifstream procs("/sys/fs/cgroup/memory/" + cgroup_parent_ + "/e2e-fork/cgroup.procs");
  for (pid_t p; procs >> p;) pids.push_back(p);
  EXPECT_GE(pids.size(), 7u);  // PID 1, 5 loops (one in its own session), httpd, sleeps
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance stopped, Stop("e2e-fork", 2000));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_EQ(stopped.exit().reason(), v1::KILLED);
  EXPECT_GE(took, absl::Milliseconds(1800));
  EXPECT_LE(took, absl::Milliseconds(2600));
  for (pid_t p : pids) EXPECT_NE(kill(p, 0), 0) << "pid " << p << " survived";
  EXPECT_TRUE(Delete("e2e-fork").ok());
}

TEST_F(SkiffdE2eTest, MemoryHogIsReportedOomKilled) {
  v1::InstanceSpec spec = Spec("memhog");
  spec.set_kind(v1::JOB);
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-hog", spec));
  ASSERT_EQ(inst.state(), v1::EXITED);
  EXPECT_EQ(inst.exit().reason(), v1::OOM_KILLED) << inst.exit().DebugString();
  EXPECT_TRUE(Delete("e2e-hog").ok());
}

TEST_F(SkiffdE2eTest, JobRunsToCompletionWithTaskEnv) {
  v1::InstanceSpec spec = Spec("job");
  spec.set_kind(v1::JOB);
  spec.set_task_index(2);
  spec.set_task_count(3);
  (*spec.mutable_env())["EXIT_CODE"] = "7";
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-job", spec));
  ASSERT_EQ(inst.state(), v1::EXITED);
  EXPECT_EQ(inst.exit().code(), 7);
  EXPECT_EQ(inst.exit().reason(), v1::COMPLETED);
  const std::vector<std::string> lines = Logs("e2e-job");
  EXPECT_THAT(lines, ::testing::Contains("TASK_INDEX=2"));
  EXPECT_THAT(lines, ::testing::Contains("TASK_COUNT=3"));
  EXPECT_THAT(lines, ::testing::Contains("TASK_ATTEMPT=0"));
  EXPECT_TRUE(Delete("e2e-job").ok());
}

TEST_F(SkiffdE2eTest, BadInputsNameTheFieldAndLeaveNothing) {
  struct Case {
    std::string image;
    uint64_t memory;
    absl::StatusCode code;
    std::string substr;
  };
  const std::vector<Case> cases = {
      {registry_->Reference("no-such-image"), 64 << 20, absl::StatusCode::kNotFound,
       "no-such-image"},
      {registry_->Reference("hello", "no-such-tag"), 64 << 20, absl::StatusCode::kNotFound,
       "no-such-tag"},
      {"127.0.0.1:1/skiff/hello:latest", 64 << 20, absl::StatusCode::kUnavailable, "127.0.0.1:1"},
      {"Not A Reference", 64 << 20, absl::StatusCode::kInvalidArgument, "spec.image"},
      {registry_->Reference("hello"), 0, absl::StatusCode::kInvalidArgument,
       "spec.memory_bytes: must be > 0"},
      {registry_->Reference("hello"), 8ull << 30, absl::StatusCode::kResourceExhausted,
       "spec.memory_bytes: "},
  };
  for (const Case& c : cases) {
    v1::InstanceSpec spec = Spec("hello");
    spec.set_image(c.image);
    spec.set_memory_bytes(c.memory);
    auto inst = CreateAndWait("e2e-bad", spec);
    EXPECT_THAT(inst, skiff::testing::StatusIs(c.code, HasSubstr(c.substr))) << c.image;
    EXPECT_THAT(Get("e2e-bad"), skiff::testing::StatusIs(absl::StatusCode::kNotFound));
    struct stat st;
    EXPECT_NE(stat((state_dir_ + "/instances/e2e-bad").c_str(), &st), 0);
  }
  // Same id, different spec.
  SKIFF_ASSERT_OK(CreateAndWait("e2e-dup", Spec("hello")));
  SKIFF_EXPECT_OK(CreateAndWait("e2e-dup", Spec("hello"), /*fresh=*/false));
  v1::InstanceSpec other = Spec("hello");
  other.set_port(9000);
  EXPECT_THAT(CreateAndWait("e2e-dup", other, /*fresh=*/false),
              skiff::testing::StatusIs(absl::StatusCode::kAlreadyExists,
                                       StartsWith("instance_id: e2e-dup")));
}

TEST_F(SkiffdE2eTest, PoolRouteLivesWithSkiffdAndOutlivesItForRunningInstances) {
  // SetUp started skiffd: the pool is unreachable except through instances' /31s.
  ASSERT_TRUE(PoolRouteInstalled());
  {
    // Only now that the route is known to be there: an unassigned pool address fails at
    // once instead of leaving through the default route.
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(80);
    inet_pton(AF_INET, "10.213.0.201", &addr.sin_addr);
    ASSERT_NE(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_TRUE(errno == EHOSTUNREACH || errno == ENETUNREACH) << strerror(errno);
  }
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-route", Spec("hello")));
  ASSERT_EQ(inst.state(), v1::READY);
  // SIGTERM with an instance running: exit 0 within 1 s (StopSkiffd checks), the
  // instance still answers and its pool stays protected.
  StopSkiffd();
  std::cout << "skiffd exit after SIGTERM with 1 instance: "
            << absl::FormatDuration(last_stop_took_) << "\n";
  EXPECT_TRUE(PoolRouteInstalled());
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string resp, HttpGet(inst.ip(), inst.port()));
  EXPECT_THAT(resp, HasSubstr("hello from skiff"));
  StartSkiffd();
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance again, Get("e2e-route"));
  EXPECT_EQ(again.state(), v1::READY);
  SKIFF_ASSERT_OK(Stop("e2e-route", 0));
  EXPECT_TRUE(Delete("e2e-route").ok());
  // No instance left: a clean shutdown removes the route (and the empty cgroup parent).
  StopSkiffd();
  EXPECT_FALSE(PoolRouteInstalled());
  struct stat st;
  EXPECT_NE(stat(("/sys/fs/cgroup/memory/" + cgroup_parent_).c_str(), &st), 0);
}

// The CPU latency QoS value in force system-wide (/dev/cpu_dma_latency), µs.
int32_t CpuLatencyInForce() {
  auto v = ingress::CpuLatencyRequest::Current();
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : -1;
}

TEST_F(SkiffdE2eTest, CpuLatencyQosIsHeldWhileSkiffdRunsAndDroppedWhenItEnds) {
  StopSkiffd();  // SetUp's skiffd runs without the flag
  const int32_t before = CpuLatencyInForce();
  extra_flags_ = {"--cpu-latency-qos-us=7"};
  StartSkiffd();
  EXPECT_EQ(CpuLatencyInForce(), std::min(before, 7));
  StopSkiffd();  // SIGTERM: exits 0
  EXPECT_EQ(CpuLatencyInForce(), before);
  // Killed, it holds nothing either: the kernel drops the request with the fd.
  StartSkiffd();
  EXPECT_EQ(CpuLatencyInForce(), std::min(before, 7));
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid_, &status, 0), pid_);
  pid_ = -1;
  stub_.reset();
  EXPECT_EQ(CpuLatencyInForce(), before);
  // The kill left the socket (removed here, so StartSkiffd waits for the new one) and the
  // pool route (a plain skiffd's SIGTERM in TearDown, with no instance left, removes it).
  unlink(socket_.c_str());
  extra_flags_.clear();
  StartSkiffd();
  // An out-of-range value is refused, naming the flag, before anything starts.
  const std::string bin = BuildDir() + "/agent/skiffd";
  auto out = skiff::testing::RunShell(absl::StrCat(
      bin, " --socket ", tmp_.path(), "/refused.sock --state-dir ", tmp_.path(),
      "/refused-state --image-root ", tmp_.path(), "/refused-images --cpu-latency-qos-us=-2 2>&1"));
  EXPECT_TRUE(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 2) << out.output;
  EXPECT_THAT(out.output, HasSubstr("flag --cpu-latency-qos-us: -2 is not in -1..2000000000"));
  EXPECT_EQ(CpuLatencyInForce(), before);
}

TEST_F(SkiffdE2eTest, SigkilledShimIsLostAndItsLeftoversAreRemoved) {
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance inst, CreateAndWait("e2e-lost", Spec("hello")));
  ASSERT_EQ(inst.state(), v1::READY);
  const std::string dir = state_dir_ + "/instances/e2e-lost";
  const std::string cgroup = "/sys/fs/cgroup/memory/" + cgroup_parent_ + "/e2e-lost";
  struct stat st;
  ASSERT_EQ(stat(cgroup.c_str(), &st), 0);
  ASSERT_EQ(stat((dir + "/rootfs").c_str(), &st), 0);
  std::ifstream pid_file(dir + "/shim.pid");
  pid_t shim_pid = 0;
  pid_file >> shim_pid;
  ASSERT_GT(shim_pid, 1);
  ASSERT_EQ(kill(shim_pid, SIGKILL), 0);
  absl::StatusOr<v1::Instance> lost;
  for (int i = 0; i < 250; ++i) {
    lost = Get("e2e-lost");
    if (lost.ok() && lost->state() == v1::EXITED) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(lost.ok()) << lost.status();
  ASSERT_EQ(lost->state(), v1::EXITED);
  EXPECT_EQ(lost->exit().reason(), v1::LOST) << lost->exit().DebugString();
  EXPECT_THAT(lost->exit().message(), Not(HasSubstr("cleanup failed")));
  EXPECT_NE(stat(cgroup.c_str(), &st), 0) << cgroup << " left behind";
  EXPECT_NE(stat((dir + "/rootfs").c_str(), &st), 0) << dir << "/rootfs left behind";
  EXPECT_FALSE(RunningProcess(inst.pid())) << "instance pid " << inst.pid() << " survived";
  {
    grpc::ClientContext ctx;
    v1::Node node;
    ASSERT_TRUE(stub_->GetNode(&ctx, v1::GetNodeRequest(), &node).ok());
    EXPECT_EQ(node.vcpus_milli_allocated(), 0u);
  }
  EXPECT_TRUE(Delete("e2e-lost").ok());
  EXPECT_NE(stat(dir.c_str(), &st), 0);
}

}  // namespace
}  // namespace skiff::agent
