// LocalRegistry (tests/support/registry.h) and scripts/registry.sh against a real
// docker-registry: they start it, it answers the distribution API, and stopping it leaves
// no process and no directory behind.

#include "tests/support/registry.h"

#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "sandbox/common/file_io.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;

TEST(LocalRegistryTest, AnswersV2OnLoopbackAndCleansUp) {
  std::string dir;
  pid_t pid = -1;
  {
    SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
    dir = registry->dir();
    pid = registry->pid();
    EXPECT_EQ(registry->address(), absl::StrCat("127.0.0.1:", registry->port()));
    EXPECT_TRUE(ProcessRunning(pid));
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse r, registry->Get("/v2/"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["docker-distribution-api-version"], "registry/2.0");
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse missing, registry->Get("/v2/skiff/nope/tags/list"));
    EXPECT_EQ(missing.status, 404);
    EXPECT_THAT(missing.body, HasSubstr("NAME_UNKNOWN"));
    EXPECT_TRUE(std::filesystem::is_directory(dir + "/data"));
    EXPECT_EQ(registry->Reference("hello"), registry->address() + "/skiff/hello:latest");
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
  // The registry was our child and has been reaped: the pid is gone.
  EXPECT_FALSE(ProcessRunning(pid)) << pid;
}

TEST(LocalRegistryTest, TwoRegistriesGetDifferentPortsAndDirs) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto a, LocalRegistry::Start());
  SKIFF_ASSERT_OK_AND_ASSIGN(auto b, LocalRegistry::Start());
  EXPECT_NE(a->port(), b->port());
  EXPECT_NE(a->dir(), b->dir());
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse ra, a->Get("/v2/"));
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse rb, b->Get("/v2/"));
  EXPECT_EQ(ra.status, 200);
  EXPECT_EQ(rb.status, 200);
}

TEST(LocalRegistryTest, KillMakesItUnreachable) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
  const pid_t pid = registry->pid();
  registry->Kill();
  EXPECT_FALSE(ProcessRunning(pid));
  EXPECT_THAT(registry->Get("/v2/"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(registry->address() + "/v2/")));
  registry->Kill();  // idempotent
}

TEST(LocalRegistryTest, PushRejectsUnknownImageNames) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
  EXPECT_THAT(registry->PushExampleImages({"no-such-image"}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("unknown image 'no-such-image'")));
  EXPECT_THAT(registry->PushExampleImages({}), StatusIs(absl::StatusCode::kInvalidArgument));
}

// scripts/registry.sh start/status/stop with an explicit --dir.
TEST(RegistryScriptTest, StartStatusStop) {
  char tmpl[] = "/tmp/skiff-registry-script-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string parent = tmpl;
  const std::string dir = parent + "/reg";
  const std::string script = SourceDir() + "/scripts/registry.sh";
  struct Cleanup {
    std::string parent, dir, script;
    ~Cleanup() {
      (void)RunCommand({"bash", script, "stop", "--dir", dir}, "/dev/null");
      std::error_code ec;
      std::filesystem::remove_all(parent, ec);
    }
  } cleanup{parent, dir, script};

  const std::string log = parent + "/start.log";
  SKIFF_ASSERT_OK(RunCommand({"bash", script, "start", "--dir", dir}, log));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string port_text, ReadFileToString(dir + "/port"));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string pid_text, ReadFileToString(dir + "/pid"));
  int port = 0;
  pid_t pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(port_text), &port)) << port_text;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(pid_text), &pid)) << pid_text;
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string out, ReadFileToString(log));
  // The address is printed (stdout and stderr share the log here).
  EXPECT_THAT(out, HasSubstr(absl::StrCat("127.0.0.1:", port, "\n")));
  EXPECT_TRUE(ProcessRunning(pid));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string cmdline,
                             ReadFileToString(absl::StrCat("/proc/", pid, "/cmdline")));
  EXPECT_THAT(cmdline, HasSubstr("docker-registry"));

  const std::string status_log = parent + "/status.log";
  SKIFF_ASSERT_OK(RunCommand({"bash", script, "status", "--dir", dir}, status_log));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string status_out, ReadFileToString(status_log));
  EXPECT_EQ(status_out, absl::StrCat("127.0.0.1:", port, "\n"));

  // A second start on the same dir is refused while the first runs.
  EXPECT_THAT(RunCommand({"bash", script, "start", "--dir", dir}, parent + "/again.log"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("already runs")));

  SKIFF_ASSERT_OK(RunCommand({"bash", script, "stop", "--dir", dir}, parent + "/stop.log"));
  EXPECT_FALSE(std::filesystem::exists(dir));
  // Not our child: wait for init to reap it.
  for (int i = 0; i < 100 && ProcessRunning(pid); ++i) usleep(20000);
  EXPECT_FALSE(ProcessRunning(pid));
  EXPECT_THAT(RunCommand({"bash", script, "status", "--dir", dir}, parent + "/status2.log"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no registry")));
}

}  // namespace
}  // namespace skiff::testing
