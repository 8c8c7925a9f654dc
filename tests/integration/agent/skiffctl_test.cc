// The skiffctl binary against an in-process AgentService (fakes behind it): every
// command, table and --json output, and exit codes with the gRPC error message.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "tests/integration/agent/agent_server_fixture.h"

namespace skiff::agent {
namespace {

using testing::AgentServerTest;
using ::testing::HasSubstr;
using testing::kHelloImage;
using ::testing::Not;
using ::testing::StartsWith;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

class SkiffctlTest : public AgentServerTest {
 protected:
  Result Ctl(std::vector<std::string> args) {
    const char* build = getenv("SKIFF_BUILD_DIR");
    const std::string bin = std::string(build ? build : ".") + "/agent/skiffctl/skiffctl";
    args.insert(args.begin(), {bin, "--socket", socket_});
    int out[2], err[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    Result r;
    std::thread t([&] { r.err = ReadAll(err[0]); });
    r.out = ReadAll(out[0]);
    t.join();
    close(out[0]);
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }
};

TEST_F(SkiffctlTest, RunPsInspectStopRm) {
  Result r = Ctl({"run",      kHelloImage,   "--id",    "web",  "--port",       "9000",
                  "--memory", "256Mi",       "--cpu",   "500m", "--env",        "A=1",
                  "--label",  "service=web", "--grace", "3s",   "--entrypoint", "/bin/busybox",
                  "--",       "httpd",       "-v"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "web STARTED 10.88.0.3:9000\n");
  auto shim = runtime_.shim(Dir("web"));
  ASSERT_NE(shim, nullptr);
  EXPECT_EQ(shim->config().memory_bytes(), 256u << 20);
  EXPECT_EQ(shim->config().vcpus_milli(), 500u);
  EXPECT_EQ(shim->config().termination_grace_ms(), 3000u);
  // --entrypoint replaces the image's Entrypoint, "-- ARGS" its Cmd.
  EXPECT_THAT(shim->config().argv(), ::testing::ElementsAre("/bin/busybox", "httpd", "-v"));
  EXPECT_THAT(shim->config().env(), ::testing::Contains("A=1"));

  r = Ctl({"ps"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("ID   STATE    IMAGE"));
  EXPECT_THAT(r.out, HasSubstr("web  STARTED  127.0.0.1:5000/hello:latest  10.88.0.3:9000"));
  r = Ctl({"ps", "-l", "service!=web"});
  EXPECT_THAT(r.out, Not(HasSubstr("web ")));
  r = Ctl({"--json", "ps", "-l", "service=web"});
  EXPECT_THAT(r.out, HasSubstr("\"id\": \"web\""));

  r = Ctl({"inspect", "web"});
  ASSERT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("\"memoryBytes\": \"268435456\""));
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"STARTED\""));

  r = Ctl({"rm", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("skiffctl: FAILED_PRECONDITION: instance_id: web is STARTED"));

  r = Ctl({"stop", "web", "--grace", "2s"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("EXITED"));
  EXPECT_THAT(r.out, HasSubstr("STOPPED code=0"));
  EXPECT_EQ(shim->last_stop_grace(), absl::Seconds(2));

  r = Ctl({"rm", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = Ctl({"inspect", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "skiffctl: NOT_FOUND: instance_id: web not found\n");
}

TEST_F(SkiffctlTest, ErrorsAndUsage) {
  Result r = Ctl({"run", kHelloImage, "--id", "big", "--memory", "0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "skiffctl: INVALID_ARGUMENT: spec.memory_bytes: must be > 0\n");
  r = Ctl({"run", kHelloImage, "--port", "70000"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("spec.port: 70000 out of range 1..65535"));
  r = Ctl({"run", kHelloImage, "--memory", "lots"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--memory: \"lots\" is not a size"));
  r = Ctl({"run"});
  EXPECT_EQ(r.code, 2);
  r = Ctl({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  r = Ctl({"ps", "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(controller_->GetNode().instances_total(), 0u);
}

TEST_F(SkiffctlTest, RunJobWaitReadyReportsExit) {
  std::thread finisher([&] {
    for (int i = 0; i < 200 && runtime_.shim(Dir("job")) == nullptr; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    absl::SleepFor(absl::Milliseconds(100));
    if (auto s = runtime_.shim(Dir("job"))) s->Exit(3, 0, v1::COMPLETED);
  });
  Result r = Ctl({"run", kHelloImage, "--id", "job", "--job", "--task-index", "1", "--task-count",
                  "4", "--wait-ready"});
  finisher.join();
  EXPECT_EQ(r.code, 1);  // a job that exits non-zero fails the command
  EXPECT_THAT(r.out, HasSubstr("job EXITED"));
  EXPECT_THAT(r.err, HasSubstr("COMPLETED code=3"));
  auto shim = runtime_.shim(Dir("job"));
  EXPECT_THAT(shim->config().env(), ::testing::Contains("TASK_INDEX=1"));
  EXPECT_THAT(shim->config().env(), ::testing::Contains("TASK_COUNT=4"));
  EXPECT_TRUE(shim->config().is_job());
}

TEST_F(SkiffctlTest, RunServiceWaitReady) {
  std::thread readier([&] {
    for (int i = 0; i < 200 && runtime_.shim(Dir("svc")) == nullptr; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    absl::SleepFor(absl::Milliseconds(100));
    if (auto s = runtime_.shim(Dir("svc"))) s->MoveTo(v1::shim::READY);
  });
  Result r = Ctl({"run", kHelloImage, "--id", "svc", "--wait-ready"});
  readier.join();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "svc READY 10.88.0.3:8080\n");
}

TEST_F(SkiffctlTest, WaitReadyWithoutIdChoosesOne) {
  runtime_.set_start_state(v1::shim::READY);
  Result r = Ctl({"run", kHelloImage, "--wait-ready"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("i-[0-9a-f]{12} READY 10\\.88\\.0\\.3:8080\n"));
}

TEST_F(SkiffctlTest, LogsEventsPullImagesRmiNode) {
  ASSERT_EQ(Ctl({"run", kHelloImage, "--id", "l"}).code, 0);
  auto shim = runtime_.shim(Dir("l"));
  shim->AppendLog(false, false, "to stdout");
  shim->AppendLog(true, false, "to stderr");
  Result r = Ctl({"logs", "l"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "to stdout\n");
  EXPECT_EQ(r.err, "to stderr\n");

  // events + logs -f while the instance stops.
  Result events, follow;
  std::thread ev([&] { events = Ctl({"events", "l"}); });
  std::thread lf([&] { follow = Ctl({"logs", "-f", "l"}); });
  absl::SleepFor(absl::Milliseconds(500));
  shim->AppendLog(false, false, "bye");
  ASSERT_EQ(Ctl({"stop", "l"}).code, 0);
  lf.join();
  EXPECT_EQ(follow.code, 0);
  EXPECT_EQ(follow.out, "to stdout\nbye\n");
  // The events stream does not end by itself; the server shutdown in teardown ends it.
  absl::SleepFor(absl::Milliseconds(200));
  bus_.CloseAll();
  ev.join();
  EXPECT_THAT(events.out, HasSubstr("STOPPING l"));
  EXPECT_THAT(events.out, HasSubstr("EXITED l STOPPED code=0 signal=0"));
  EXPECT_LT(events.out.find("STOPPING"), events.out.find("EXITED"));

  r = Ctl({"pull", kHelloImage});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("fetching layers 0/1"));
  EXPECT_THAT(r.out, HasSubstr("done layers 1/1 bytes 1234/1234"));
  r = Ctl({"--json", "pull", kHelloImage});
  EXPECT_THAT(r.out, HasSubstr("\"phase\":\"done\""));
  r = Ctl({"pull", "127.0.0.1:5000/nope:1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("skiffctl: NOT_FOUND: "));

  r = Ctl({"images"});
  ASSERT_EQ(r.code, 0);
  EXPECT_THAT(r.out, StartsWith("REFERENCE"));
  EXPECT_THAT(r.out, HasSubstr(kHelloImage));
  EXPECT_THAT(r.out, HasSubstr("1.2 KiB"));

  r = Ctl({"node"});
  ASSERT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("0m / 2000m allocated"));
  EXPECT_THAT(r.out, HasSubstr("  EXITED"));
  r = Ctl({"--json", "node"});
  EXPECT_THAT(r.out, HasSubstr("\"vcpusMilliCapacity\": 2000"));

  ASSERT_EQ(Ctl({"rm", "l"}).code, 0);
  r = Ctl({"rmi", kHelloImage});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Ctl({"images"});
  EXPECT_THAT(r.out, Not(HasSubstr(kHelloImage)));
}

}  // namespace
}  // namespace skiff::agent
