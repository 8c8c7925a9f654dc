// skiff-shim end to end: launched detached from the build tree, driven over its socket,
// running real gen1 sandboxes. Every test checks the host afterwards (fixture).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/shim/shim_fixture.h"
#include "tests/support/status_matchers.h"

namespace skiff::shim {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;

int64_t Ms(int64_t ns) { return ns / 1000000; }

TEST_F(ShimTest, JobRunsToCompletionWithOutputInCriFormat) {
  SKIFF_ASSERT_OK(LaunchShim(
      ShimBinary(),
      Config({"sh", "-c", "echo out-line; echo err-line >&2; printf no-newline; exit 3"}, true)));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(10)));
  EXPECT_EQ(st.exit_code(), 3);
  EXPECT_EQ(st.exit_signal(), 0);
  EXPECT_EQ(st.exit_reason(), kCompleted);
  EXPECT_GT(st.started_unix_ns(), 0);
  EXPECT_GE(st.exited_unix_ns(), st.started_unix_ns());

  std::vector<ConsoleRecord> records = Console();
  ASSERT_EQ(records.size(), 3u) << testbed::ReadTestFile(state_.path() + "/console.log");
  const std::regex ts(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z)");
  for (const ConsoleRecord& r : records)
    EXPECT_TRUE(std::regex_match(r.timestamp, ts)) << r.timestamp;
  auto find = [&](const std::string& text) -> const ConsoleRecord* {
    for (const ConsoleRecord& r : records) {
      if (r.text == text) return &r;
    }
    return nullptr;
  };
  ASSERT_NE(find("out-line"), nullptr);
  EXPECT_EQ(find("out-line")->stream, "stdout");
  EXPECT_EQ(find("out-line")->tag, "F");
  ASSERT_NE(find("err-line"), nullptr);
  EXPECT_EQ(find("err-line")->stream, "stderr");
  ASSERT_NE(find("no-newline"), nullptr) << "an unterminated tail is flushed at exit";
  EXPECT_FALSE(testbed::PathExists(state_.path() + "/shim.sock"));
}

TEST_F(ShimTest, ServiceBecomesReadyAndAnswersHttpFromTheHost) {
  SKIFF_ASSERT_OK(
      LaunchShim(ShimBinary(), Config({"httpd", "-f", "-p", "8080", "-h", "/www"}, false)));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  std::vector<v1::shim::State> states;
  // Subscribe until READY is seen, from a second connection, then stop.
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> watcher,
                             ShimClient::Connect(state_.path()));
  std::thread watch([&] {
    (void)watcher->Subscribe([&](const v1::shim::ShimStatus& s) { states.push_back(s.state()); });
  });
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  v1::shim::ShimStatus st;
  do {
    SKIFF_ASSERT_OK_AND_ASSIGN(st, client->GetStatus());
    absl::SleepFor(absl::Milliseconds(5));
  } while (st.state() != v1::shim::READY && absl::Now() < deadline);
  ASSERT_EQ(st.state(), v1::shim::READY);
  EXPECT_GT(st.pid(), 0);
  EXPECT_GE(st.ready_unix_ns(), st.started_unix_ns());
  std::string response = testbed::HttpGet(names_.instance_ip, 8080, "/index.html");
  EXPECT_THAT(response, AllOf(HasSubstr("200 OK"), HasSubstr("hello from skiff")));

  // httpd keeps SIGTERM's default: the forwarded signal ends it well within the grace.
  absl::Time stop_at = absl::Now();
  SKIFF_ASSERT_OK(client->Stop(std::nullopt));
  SKIFF_ASSERT_OK_AND_ASSIGN(st, WaitExited(absl::Seconds(10)));
  watch.join();
  EXPECT_LT(absl::Now() - stop_at, absl::Seconds(2));
  EXPECT_EQ(st.exit_reason(), kStopped);
  EXPECT_EQ(st.exit_code(), -1);
  EXPECT_EQ(st.exit_signal(), SIGTERM);
  EXPECT_THAT(states, Contains(v1::shim::READY));
  EXPECT_THAT(states, Contains(v1::shim::STOPPING));
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), v1::shim::EXITED);
}

TEST_F(ShimTest, SigtermHandlerExitsPromptlyWithCodeZero) {
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), Config({"sh", "-c",
                                                   "trap 'echo got-term; exit 0' TERM; echo ready; "
                                                   "while true; do sleep 0.05; done"},
                                                  true)));
  ASSERT_TRUE(WaitForConsole("ready", absl::Seconds(10)));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  SKIFF_ASSERT_OK(client->Stop(absl::Seconds(10)));
  SKIFF_ASSERT_OK(client->Stop(absl::Seconds(10))) << "Stop is idempotent";
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(10)));
  EXPECT_EQ(st.exit_code(), 0);
  EXPECT_EQ(st.exit_signal(), 0);
  EXPECT_EQ(st.exit_reason(), kStopped);
  EXPECT_LT(Ms(st.exited_unix_ns() - st.stopping_unix_ns()), 1000);
  EXPECT_TRUE(WaitForConsole("got-term", absl::Seconds(1)));
}

// The ignorer and its forked children (which keep SIGTERM's default but never get it:
// only PID 2 does) all die at the grace period.
void ExpectKilledAtGrace(ShimTest* test, absl::Duration grace, const std::string& dir,
                         const std::string& marker, const v1::shim::ShimStatus& st) {
  (void)test;
  (void)dir;
  int64_t grace_ms = absl::ToInt64Milliseconds(grace);
  int64_t took_ms = Ms(st.exited_unix_ns() - st.stopping_unix_ns());
  EXPECT_GE(took_ms, grace_ms - 200) << took_ms;
  EXPECT_LE(took_ms, grace_ms + 200) << took_ms;
  EXPECT_EQ(st.exit_reason(), kKilled);
  EXPECT_EQ(st.exit_code(), -1);
  EXPECT_EQ(st.exit_signal(), SIGKILL);
  EXPECT_TRUE(testbed::ProcessesWithMarker(marker).empty());
}

constexpr char kIgnorerScript[] =
    "trap '' TERM; sleep 1000 & sleep 1000 & (trap '' TERM; while true; do sleep 1; done) & "
    "echo ready; while true; do sleep 0.05; done";

TEST_F(ShimTest, IgnorerAndItsChildrenAreKilledAtTheGracePeriod) {
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), Config({"sh", "-c", kIgnorerScript}, true)));
  ASSERT_TRUE(WaitForConsole("ready", absl::Seconds(10)));
  EXPECT_GE(testbed::ProcessesWithMarker(names_.marker).size(), 4u);
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  SKIFF_ASSERT_OK(client->Stop(absl::Seconds(2)));
  // Still running (ignoring SIGTERM) well into the grace period.
  absl::SleepFor(absl::Milliseconds(1500));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus mid, client->GetStatus());
  EXPECT_EQ(mid.state(), v1::shim::STOPPING);
  EXPECT_GE(testbed::ProcessesWithMarker(names_.marker).size(), 4u);
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(10)));
  ExpectKilledAtGrace(this, absl::Seconds(2), state_.path(), names_.marker, st);
}

TEST_F(ShimTest, MemoryHogIsReportedOomKilled) {
  v1::shim::ShimConfig config = Config({"tail", "/dev/zero"}, true);
  config.set_memory_bytes(32 << 20);
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), config));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(30)));
  EXPECT_EQ(st.exit_reason(), kOomKilled);
  EXPECT_EQ(st.exit_signal(), SIGKILL);
}

TEST_F(ShimTest, ServiceThatNeverListensFailsTheStartupProbe) {
  v1::shim::ShimConfig config = Config({"sleep", "1000"}, false);
  config.set_startup_timeout_ms(300);
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), config));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(10)));
  EXPECT_EQ(st.exit_reason(), kStartupProbeFailed);
  EXPECT_EQ(st.ready_unix_ns(), 0);
  EXPECT_GE(Ms(st.exited_unix_ns() - st.started_unix_ns()), 300);
  EXPECT_LT(Ms(st.exited_unix_ns() - st.started_unix_ns()), 1500);
}

TEST_F(ShimTest, MissingLowerDirIsStartFailedNamingTheFieldAndPath) {
  v1::shim::ShimConfig config = Config({"true"}, true);
  config.set_lower_dirs(0, rootfs_.path() + "/missing-layer");
  EXPECT_THAT(LaunchShim(ShimBinary(), config),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("lower_dirs[0]"), HasSubstr("missing-layer"))));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(5)));
  EXPECT_EQ(st.exit_reason(), kStartFailed);
  EXPECT_THAT(st.exit_message(), AllOf(HasSubstr("lower_dirs[0]"), HasSubstr("missing-layer")));
}

TEST_F(ShimTest, BadProgramIsStartFailedNamingExecveAndThePath) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      v1::shim::ShimStatus st, [&]() -> absl::StatusOr<v1::shim::ShimStatus> {
        absl::Status launched = LaunchShim(ShimBinary(), Config({"/bin/not-there"}, true));
        EXPECT_THAT(launched, StatusIs(absl::StatusCode::kFailedPrecondition,
                                       AllOf(HasSubstr("execve"), HasSubstr("/bin/not-there"))));
        return WaitExited(absl::Seconds(5));
      }());
  EXPECT_EQ(st.exit_reason(), kStartFailed);
  EXPECT_THAT(st.exit_message(), AllOf(HasSubstr("execve"), HasSubstr("/bin/not-there")));
}

TEST_F(ShimTest, Generation2WithoutItsBootFilesIsRefused) {
  v1::shim::ShimConfig config = Config({"true"}, true);
  config.set_generation(2);
  EXPECT_THAT(LaunchShim(ShimBinary(), config),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("kernel_path")));
}

TEST_F(ShimTest, InstanceSurvivesItsLauncherAndAnotherClientStopsIt) {
  pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    absl::Status st =
        LaunchShim(ShimBinary(), Config({"httpd", "-f", "-p", "8080", "-h", "/www"}, false));
    _exit(st.ok() ? 0 : 1);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(launcher, &wstatus, 0), launcher);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);

  pid_t shim_pid = ShimPid();
  ASSERT_GT(shim_pid, 0);
  EXPECT_TRUE(ProcessAlive(shim_pid));
  EXPECT_NE(getsid(shim_pid), getsid(0)) << "the shim left the launcher's session";
  EXPECT_NE(getpgid(shim_pid), getpgid(0));

  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> subscriber,
                             ShimClient::Connect(state_.path()));
  std::vector<v1::shim::ShimStatus> seen;
  absl::Status sub_status;
  std::thread watch([&] {
    sub_status = subscriber->Subscribe([&](const v1::shim::ShimStatus& s) { seen.push_back(s); });
  });
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  v1::shim::ShimStatus st;
  do {
    SKIFF_ASSERT_OK_AND_ASSIGN(st, client->GetStatus());
    absl::SleepFor(absl::Milliseconds(5));
  } while (st.state() != v1::shim::READY && absl::Now() < deadline);
  ASSERT_EQ(st.state(), v1::shim::READY);
  EXPECT_EQ(st.shim_pid(), shim_pid);
  SKIFF_ASSERT_OK(client->Stop(absl::Seconds(1)));
  watch.join();
  SKIFF_EXPECT_OK(sub_status);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.back().state(), v1::shim::EXITED);
  EXPECT_EQ(seen.back().exit_reason(), kStopped);
  // The EXITED push equals what was persisted.
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus final_status, WaitExited(absl::Seconds(5)));
  EXPECT_EQ(final_status.SerializeAsString(), seen.back().SerializeAsString());
  EXPECT_THAT(ShimClient::Connect(state_.path()), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(ShimTest, SigtermToTheShimStopsTheInstanceGracefully) {
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), Config({"sh", "-c",
                                                   "trap 'echo bye; exit 0' TERM; echo ready; "
                                                   "while true; do sleep 0.05; done"},
                                                  true)));
  ASSERT_TRUE(WaitForConsole("ready", absl::Seconds(10)));
  ASSERT_EQ(kill(ShimPid(), SIGTERM), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(10)));
  EXPECT_EQ(st.exit_reason(), kStopped);
  EXPECT_EQ(st.exit_code(), 0);
  EXPECT_TRUE(WaitForConsole("bye", absl::Seconds(1)));
}

TEST_F(ShimTest, SecondLaunchIntoALiveStateDirIsRefusedAndChangesNothing) {
  v1::shim::ShimConfig config = Config({"sleep", "1000"}, true);
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), config));
  pid_t shim_pid = ShimPid();
  std::string config_before = testbed::ReadTestFile(state_.path() + "/config.pb");
  v1::shim::ShimConfig other = Config({"true"}, true);
  EXPECT_THAT(LaunchShim(ShimBinary(), other),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(state_.path())));
  EXPECT_EQ(testbed::ReadTestFile(state_.path() + "/config.pb"), config_before);
  // Even a shim started by hand against the dir leaves the live one alone.
  EXPECT_NE(system((ShimBinary() + " --state-dir " + state_.path() + " 2>/dev/null").c_str()), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, client->GetStatus());
  EXPECT_EQ(st.state(), v1::shim::RUNNING);
  EXPECT_EQ(st.shim_pid(), shim_pid);
  SKIFF_ASSERT_OK(client->Stop(absl::ZeroDuration()));
  SKIFF_ASSERT_OK_AND_ASSIGN(st, WaitExited(absl::Seconds(10)));
  // Grace 0: SIGTERM and SIGKILL race; either way it was the Stop that ended it.
  EXPECT_THAT(st.exit_reason(), ::testing::AnyOf(kStopped, kKilled));
}

TEST_F(ShimTest, IdleShimPrivateMemoryIsUnderThreeMiB) {
  absl::Time launch = absl::Now();
  SKIFF_ASSERT_OK(
      LaunchShim(ShimBinary(), Config({"httpd", "-f", "-p", "8080", "-h", "/www"}, false)));
  absl::Duration launch_took = absl::Now() - launch;
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  v1::shim::ShimStatus st;
  do {
    SKIFF_ASSERT_OK_AND_ASSIGN(st, client->GetStatus());
    absl::SleepFor(absl::Milliseconds(5));
  } while (st.state() != v1::shim::READY && absl::Now() < deadline);
  ASSERT_EQ(st.state(), v1::shim::READY);
  printf(
      "LaunchShim returned after %.1f ms; shim start -> app execve %.1f ms, execve -> READY %.1f "
      "ms\n",
      absl::ToDoubleMilliseconds(launch_took), (st.started_unix_ns() - st.created_unix_ns()) / 1e6,
      (st.ready_unix_ns() - st.started_unix_ns()) / 1e6);
  ASSERT_GT(testbed::HttpGet(names_.instance_ip, 8080, "/").size(), 0u);
  int64_t shim_private = testbed::PrivateBytes(st.shim_pid());
  int64_t init_private = testbed::PrivateBytes(st.pid());
  // The init is a fork of the shim: their common copy-on-write pages count as shared
  // dirty, not private, in both. They exist once per instance, so they are part of its
  // cost too.
  int64_t shim_shared_dirty = testbed::SmapsRollupBytes(st.shim_pid(), "Shared_Dirty");
  ASSERT_GT(shim_private, 0);
  ASSERT_GE(init_private, 0);
  ASSERT_GE(shim_shared_dirty, 0);
  int64_t per_instance = shim_private + init_private + shim_shared_dirty;
  printf(
      "skiff-shim private (Private_Clean+Private_Dirty): %.2f MiB; sandbox init private: %.2f "
      "MiB; shared dirty between them: %.2f MiB; per-instance total: %.2f MiB\n",
      shim_private / 1048576.0, init_private / 1048576.0, shim_shared_dirty / 1048576.0,
      per_instance / 1048576.0);
  RecordProperty("shim_private_bytes", std::to_string(shim_private));
  RecordProperty("init_private_bytes", std::to_string(init_private));
  RecordProperty("per_instance_bytes", std::to_string(per_instance));
  EXPECT_LE(shim_private, 3 << 20);
  EXPECT_LE(per_instance, 3 << 20);
  SKIFF_ASSERT_OK(client->Stop(absl::Seconds(2)));
  SKIFF_ASSERT_OK(WaitExited(absl::Seconds(10)).status());
}

}  // namespace
}  // namespace skiff::shim
