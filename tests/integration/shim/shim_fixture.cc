#include "tests/integration/shim/shim_fixture.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/support/status_matchers.h"

namespace skiff::shim {

void ShimTest::SetUp() {
  ASSERT_EQ(geteuid(), 0u) << "shim tests need root (labelled privileged)";
  ASSERT_EQ(access(ShimBinary().c_str(), X_OK), 0) << ShimBinary();
  names_ = testbed::UniqueNames();
  testbed::BuildBusyboxRootfs(rootfs_.path());
  before_ = testbed::HostSnapshot::Take();
  SKIFF_ASSERT_OK_AND_ASSIGN(
      host_before_, ::skiff::testing::HostState::Capture(testbed::HostStateOptionsForTests()));
}

void ShimTest::TearDown() {
  // A test that bailed out early still must not leave a running instance behind.
  pid_t pid = ShimPid();
  if (pid > 0 && ProcessAlive(pid)) {
    if (absl::StatusOr<std::unique_ptr<ShimClient>> c = ShimClient::Connect(state_.path());
        c.ok()) {
      (void)(*c)->Stop(absl::ZeroDuration());
    } else {
      kill(pid, SIGTERM);
    }
    (void)WaitExited(absl::Seconds(15));
  }
  EXPECT_THAT(before_.Leaks(names_, {state_.path() + "/rootfs", state_.path() + "/shim.sock"}),
              ::testing::IsEmpty());
  testbed::RemoveTestCgroupParents();
  SKIFF_ASSERT_OK_AND_ASSIGN(
      ::skiff::testing::HostState after,
      ::skiff::testing::HostState::Capture(testbed::HostStateOptionsForTests()));
  EXPECT_EQ(testbed::LeakedLines(::skiff::testing::DiffHostState(host_before_, after)), "");
}

std::string ShimTest::ShimBinary() const { return SKIFF_SHIM_BINARY; }

v1::shim::ShimConfig ShimTest::Config(std::vector<std::string> argv, bool is_job) {
  v1::shim::ShimConfig c;
  c.set_instance_id(names_.id);
  c.set_state_dir(state_.path());
  c.set_generation(1);
  c.add_lower_dirs(rootfs_.path());
  for (const std::string& a : argv) c.add_argv(a);
  c.add_env("PATH=/bin");
  c.add_env("PORT=8080");
  c.add_env("SKIFF_TEST_MARKER=" + names_.marker);
  c.set_working_dir("/");
  c.set_hostname(names_.id);
  c.set_vcpus_milli(1000);
  c.set_memory_bytes(64 << 20);
  c.set_pids_limit(256);
  c.set_cgroup_path(names_.cgroup_path);
  c.set_host_veth(names_.host_veth);
  c.set_host_ip(names_.host_ip);
  c.set_instance_ip(names_.instance_ip);
  c.set_prefix_len(31);
  c.set_is_job(is_job);
  c.set_port(is_job ? 0 : 8080);
  c.set_startup_timeout_ms(10000);
  c.set_termination_grace_ms(10000);
  return c;
}

pid_t ShimTest::ShimPid() const {
  std::string text = testbed::ReadTestFile(state_.path() + "/shim.pid");
  return text.empty() ? -1 : static_cast<pid_t>(atoi(text.c_str()));
}

bool ShimTest::ProcessAlive(pid_t pid) {
  std::string stat = testbed::ReadTestFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

absl::StatusOr<v1::shim::ShimStatus> ShimTest::WaitExited(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  pid_t pid = ShimPid();
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::shim::ShimStatus> st = ReadStatusFile(state_.path());
    if (st.ok() && st->state() == v1::shim::EXITED && (pid <= 0 || !ProcessAlive(pid))) {
      return st;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError("instance did not exit in time");
}

std::vector<ConsoleRecord> ShimTest::Console() const {
  std::vector<ConsoleRecord> records;
  std::string text = testbed::ReadTestFile(state_.path() + "/console.log");
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(' ', 3));
    if (f.size() < 3) continue;
    records.push_back({f[0], f[1], f[2], f.size() > 3 ? f[3] : ""});
  }
  return records;
}

bool ShimTest::WaitForConsole(const std::string& text, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    for (const ConsoleRecord& r : Console()) {
      if (r.text == text) return true;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

}  // namespace skiff::shim
