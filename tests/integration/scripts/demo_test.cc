// scripts/run.sh, the README's first command, for real: registry + example images +
// skiffd + the `hello` and `flask` services answering curl through the ingress, then
// `run.sh stop` taking it all down.
// Setup and build are skipped (SKIFF_SKIP_BUILD=1: this binary's build dir has skiffd,
// skiffctl and skiff-shim); skiffd's socket, state dir, image root and IP pool point into a
// temp dir so the test touches nothing of the host's skiff.

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "sandbox/common/file_io.h"
#include "tests/support/http_client.h"
#include "tests/support/registry.h"
#include "tests/support/skiffd_process.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;

// Sets environment variables for this process (and so for the scripts it runs) and puts
// the previous values back on destruction.
class ScopedEnv {
 public:
  void Set(const std::string& name, const std::string& value) {
    const char* old = getenv(name.c_str());
    saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
    setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Host interface addresses inside the demo's IP pool, 10.231.7.0/24.
std::vector<std::string> PoolAddressesOnHost() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {"getifaddrs failed"};
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof(buf));
    if (std::string(buf).starts_with("10.231.7."))
      out.push_back(absl::StrCat(a->ifa_name, " ", buf));
  }
  freeifaddrs(list);
  return out;
}

TEST(DemoTest, RunShServesHelloAndFlaskThroughTheIngressAndStopTearsDown) {
  const char* build_dir = getenv("SKIFF_BUILD_DIR");
  ASSERT_NE(build_dir, nullptr) << "SKIFF_BUILD_DIR is set by skiff_add_test";
  char tmpl[] = "/tmp/skiff-demo-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string tmp = tmpl;
  const std::string script = SourceDir() + "/scripts/run.sh";
  ScopedEnv env;
  env.Set("SKIFF_SKIP_BUILD", "1");
  env.Set("SKIFF_BUILD_DIR", build_dir);
  env.Set("SKIFF_DEMO_DIR", tmp + "/demo");
  env.Set("SKIFF_SOCKET", tmp + "/skiffd.sock");
  env.Set("SKIFF_STATE_DIR", tmp + "/state");
  env.Set("SKIFF_IMAGE_ROOT", tmp + "/images");
  env.Set("SKIFF_IP_POOL", "10.231.7.0/24");
  SKIFF_ASSERT_OK_AND_ASSIGN(uint16_t ingress_port, FreeLoopbackPort());
  SKIFF_ASSERT_OK_AND_ASSIGN(uint16_t admin_port, FreeLoopbackPort());
  env.Set("SKIFF_INGRESS_LISTEN", absl::StrCat("127.0.0.1:", ingress_port));
  env.Set("SKIFF_ADMIN_LISTEN", absl::StrCat("127.0.0.1:", admin_port));
  absl::Cleanup cleanup = [&] {
    (void)RunCommand({"bash", script, "stop"}, tmp + "/cleanup-stop.log");
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
  };

  const std::string start_log = tmp + "/start.log";
  SKIFF_ASSERT_OK(RunCommand({"bash", script}, start_log));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string out, ReadFileToString(start_log));
  EXPECT_THAT(out, HasSubstr("hello answered through the ingress: hello from skiff"));
  EXPECT_THAT(out, HasSubstr("flask echoed through the ingress (after its cold start): hello "
                             "from the flask example"));
  // The printed commands name the ingress.
  EXPECT_THAT(
      out, HasSubstr(absl::StrCat("curl -H 'Host: hello' http://127.0.0.1:", ingress_port, "/")));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("curl http://127.0.0.1:", admin_port, "/metrics")));

  // Both services answer through the ingress, from here too.
  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse r, HttpRequest(ingress_port, "GET", "/", "hello"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello from skiff\n");
  SKIFF_ASSERT_OK_AND_ASSIGN(
      r, HttpRequest(ingress_port, "POST", "/", "flask.skiff.local", {}, "from the demo test"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "from the demo test");
  SKIFF_ASSERT_OK_AND_ASSIGN(r, HttpRequest(admin_port, "GET", "/metrics", "admin"));
  EXPECT_THAT(r.body, HasSubstr("skiff_ingress_requests_total{service=\"flask\",code=\"200\"}"));

  EXPECT_THAT(PoolAddressesOnHost(), ::testing::Not(::testing::IsEmpty()));

  SKIFF_ASSERT_OK_AND_ASSIGN(std::string pid_text, ReadFileToString(tmp + "/demo/skiffd.pid"));
  pid_t skiffd = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(pid_text), &skiffd)) << pid_text;
  EXPECT_TRUE(ProcessRunning(skiffd));
  EXPECT_TRUE(std::filesystem::is_directory(tmp + "/demo/registry/data"));

  // A second start is refused while the demo runs, and changes nothing.
  EXPECT_THAT(RunCommand({"bash", script}, tmp + "/again.log"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("already running")));
  EXPECT_TRUE(ProcessRunning(skiffd));

  SKIFF_ASSERT_OK(RunCommand({"bash", script, "stop"}, tmp + "/stop.log"));
  for (int i = 0; i < 100 && ProcessRunning(skiffd); ++i) usleep(20000);
  EXPECT_FALSE(ProcessRunning(skiffd));
  EXPECT_FALSE(std::filesystem::exists(tmp + "/demo/registry"));
  EXPECT_FALSE(std::filesystem::exists(tmp + "/demo/skiffd.pid"));
  // The instance's veth is gone: no host interface is left in the demo's pool. (No request
  // to its address now: without the veth's route it would leave through the default route.)
  EXPECT_THAT(PoolAddressesOnHost(), ::testing::IsEmpty());
  // No instance state left behind.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(tmp + "/state/instances", ec)) {
    ADD_FAILURE() << "left behind: " << e.path();
  }
}

}  // namespace
}  // namespace skiff::testing
