// Debian's Prometheus server (/usr/bin/prometheus, started here on loopback with a temp
// config and TSDB) scrapes an AdminServer and reads our series back through its HTTP API:
// proof that the exposition parses in the real consumer (counters, histogram buckets,
// collector gauges, escaped label values) and that values stay live between scrapes.

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/ingress/admin_server.h"
#include "agent/ingress/metrics.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";
constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kJob = "skiff-admin";

// A temp dir removed (recursively) on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/skiff-prom-XXXXXX");
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback port that was free a moment ago (Prometheus binds it itself).
absl::StatusOr<uint16_t> FreeLoopbackPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket()");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return ErrnoStatus(errno, "bind(127.0.0.1:0)");
  }
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return ErrnoStatus(errno, "getsockname()");
  }
  return ntohs(sa.sin_port);
}

size_t AppendToString(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET http://127.0.0.1:<port><path>; returns the body of a 200 answer.
absl::StatusOr<std::string> HttpGet(uint16_t port, const std::string& path) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init");
  absl::Cleanup cleanup = [curl] { curl_easy_cleanup(curl); };
  const std::string url = absl::StrCat("http://127.0.0.1:", port, path);
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");  // loopback only, whatever the environment
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": ", curl_easy_strerror(rc)));
  }
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if (code != 200) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": HTTP ", code, ": ", body));
  }
  return body;
}

std::string UrlEscape(const std::string& s) {
  CURL* curl = curl_easy_init();
  char* e = curl_easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
  std::string out = e != nullptr ? e : "";
  curl_free(e);
  curl_easy_cleanup(curl);
  return out;
}

// A prometheus server on 127.0.0.1:<port>, killed (and reaped) on destruction.
class PrometheusProcess {
 public:
  static absl::StatusOr<std::unique_ptr<PrometheusProcess>> Start(const std::string& dir,
                                                                  uint16_t admin_port) {
    const std::string config = absl::StrCat(dir, "/prometheus.yml");
    {
      std::ofstream f(config);
      f << "global:\n"
           "  scrape_interval: 1s\n"
           "  scrape_timeout: 1s\n"
           "  evaluation_interval: 1s\n"
           "scrape_configs:\n"
           "  - job_name: "
        << kJob
        << "\n"
           "    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << admin_port << "']\n";
      if (!f) return absl::InternalError(absl::StrCat("write ", config));
    }
    // The port is picked free, then bound by prometheus: retry if another process won it.
    absl::Status last = absl::UnknownError("not started");
    for (int attempt = 0; attempt < 3; ++attempt) {
      SKIFF_ASSIGN_OR_RETURN(uint16_t port, FreeLoopbackPort());
      auto p = std::unique_ptr<PrometheusProcess>(new PrometheusProcess(dir, port));
      last = p->Spawn(config);
      if (last.ok()) last = p->WaitReady(absl::Seconds(15));
      if (last.ok()) return p;
    }
    return last;
  }

  ~PrometheusProcess() { Kill(); }

  uint16_t port() const { return port_; }

  std::string Log() const {
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  PrometheusProcess(std::string dir, uint16_t port)
      : dir_(std::move(dir)), port_(port), log_(absl::StrCat(dir_, "/prometheus.log")) {}

  absl::Status Spawn(const std::string& config) {
    UniqueFd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log) return ErrnoStatus(errno, "open(", log_, ")");
    std::vector<std::string> args = {
        kPrometheus,
        absl::StrCat("--config.file=", config),
        absl::StrCat("--web.listen-address=127.0.0.1:", port_),
        absl::StrCat("--storage.tsdb.path=", dir_, "/tsdb"),
        "--log.level=info",
    };
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus(errno, "fork(prometheus)");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no prometheus behind
      ::dup2(log.get(), 1);
      ::dup2(log.get(), 2);
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    return absl::OkStatus();
  }

  // Until /-/ready answers 200; fails early if prometheus exits (e.g. port taken).
  absl::Status WaitReady(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::UnavailableError(
            absl::StrCat("prometheus exited (status ", status, ") before ready: ", Log()));
      }
      if (HttpGet(port_, "/-/ready").ok()) return absl::OkStatus();
      absl::SleepFor(absl::Milliseconds(100));
    }
    Kill();
    return absl::DeadlineExceededError(
        absl::StrCat("prometheus not ready within ", absl::FormatDuration(timeout)));
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string dir_;
  uint16_t port_;
  std::string log_;
  pid_t pid_ = -1;
};

// One instant-vector result: labels and value text.
struct Sample {
  nlohmann::json metric;
  std::string value;
};

// Runs an instant query; parse errors are returned, never thrown.
absl::StatusOr<std::vector<Sample>> Query(uint16_t port, const std::string& promql) {
  SKIFF_ASSIGN_OR_RETURN(std::string body,
                         HttpGet(port, absl::StrCat("/api/v1/query?query=", UrlEscape(promql))));
  std::vector<Sample> out;
  try {
    nlohmann::json j = nlohmann::json::parse(body);
    if (j.at("status") != "success") {
      return absl::InternalError(absl::StrCat("query ", promql, ": ", body));
    }
    for (const auto& r : j.at("data").at("result")) {
      out.push_back({r.at("metric"), r.at("value").at(1).get<std::string>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat("query ", promql, ": bad JSON: ", e.what()));
  }
  return out;
}

// Polls until `promql` has exactly one sample whose value is `want`.
absl::StatusOr<Sample> WaitForValue(uint16_t port, const std::string& promql,
                                    const std::string& want, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no answer";
  while (absl::Now() < deadline) {
    auto r = Query(port, promql);
    if (!r.ok()) {
      last = r.status().ToString();
    } else if (r->size() == 1 && (*r)[0].value == want) {
      return (*r)[0];
    } else {
      last = absl::StrCat(r->size(), " samples");
      for (const auto& s : *r) absl::StrAppend(&last, " ", s.metric.dump(), "=", s.value);
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  return absl::DeadlineExceededError(absl::StrCat(promql, " != ", want, " within ",
                                                  absl::FormatDuration(timeout), "; last: ", last));
}

TEST(PrometheusScrapeTest, PrometheusReadsOurSeriesBack) {
  ASSERT_EQ(::access(kPrometheus, X_OK), 0) << kPrometheus << " missing (scripts/setup.sh)";
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());

  MetricsRegistry metrics;
  CounterFamily* requests = metrics.AddCounter(
      "skiff_ingress_requests_total", "Requests answered by the ingress.", {"service", "code"});
  HistogramFamily* latency =
      metrics.AddHistogram("skiff_ingress_request_duration_seconds", "Arrival to last byte.",
                           {"service"}, MetricsRegistry::LatencyBuckets());
  CounterFamily* odd = metrics.AddCounter("skiff_test_escape_total", "Escaping.", {"v"});
  requests->Inc({"hello", "200"}, 42);
  requests->Inc({"hello", "503"}, 2);
  latency->Observe({"hello"}, 0.0003);
  latency->Observe({"hello"}, 0.004);
  latency->Observe({"hello"}, 7);
  const std::string nasty = "a\\b\"c\nd";
  odd->Inc({nasty}, 5);
  odd->Inc({std::string("bad\xFF")}, 6);  // invalid UTF-8 would fail the whole scrape
  std::atomic<int> in_flight{3};
  metrics.AddCollector([&in_flight](GaugeWriter& w) {
    w.Family("skiff_ingress_in_flight", "Requests in flight.");
    w.Sample({{"service", "hello"}}, in_flight.load());
  });

  SKIFF_ASSERT_OK_AND_ASSIGN(auto admin, AdminServer::Start("127.0.0.1:0", &metrics));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto prom, PrometheusProcess::Start(dir.path(), admin->port()));
  absl::Cleanup dump_log = [&] {
    if (!::testing::Test::HasFailure()) return;
    auto targets = HttpGet(prom->port(), "/api/v1/targets");
    std::fprintf(stderr, "prometheus targets: %s\nprometheus log:\n%s\n",
                 targets.ok() ? targets->c_str() : targets.status().ToString().c_str(),
                 prom->Log().c_str());
  };
  const uint16_t p = prom->port();
  const absl::Time t0 = absl::Now();
  // All waits share one budget so that a failing run still ends (and cleans up) well inside
  // ctest's 120 s: the first scrape may take a while, later series come with the same scrape
  // or the next one (1 s apart). (Prometheus scrapes ~5.8 s after it is ready: its service
  // discovery manager publishes targets every 5 s.)
  const absl::Time budget_end = t0 + absl::Seconds(60);
  auto wait = [&](const std::string& promql, const std::string& want,
                  absl::Duration timeout = absl::Seconds(10)) {
    return WaitForValue(p, promql, want, std::min(timeout, budget_end - absl::Now()));
  };

  SKIFF_ASSERT_OK(wait(absl::StrCat("up{job=\"", kJob, "\"}"), "1", absl::Seconds(30)));
  std::fprintf(stderr, "first successful scrape seen after %s\n",
               absl::FormatDuration(absl::Now() - t0).c_str());
  auto hello200 = wait("skiff_ingress_requests_total{service=\"hello\",code=\"200\"}", "42");
  ASSERT_THAT(hello200, ::skiff::testing::IsOk());
  EXPECT_EQ(hello200->metric.value("job", ""), kJob);
  EXPECT_EQ(hello200->metric.value("instance", ""), absl::StrCat("127.0.0.1:", admin->port()));
  SKIFF_EXPECT_OK(wait("skiff_ingress_requests_total{service=\"hello\",code=\"503\"}", "2"));
  SKIFF_EXPECT_OK(wait("skiff_ingress_request_duration_seconds_count{service=\"hello\"}", "3"));
  SKIFF_EXPECT_OK(
      wait("skiff_ingress_request_duration_seconds_bucket{service=\"hello\",le=\"0.0005\"}", "1"));
  SKIFF_EXPECT_OK(
      wait("skiff_ingress_request_duration_seconds_bucket{service=\"hello\",le=\"0.005\"}", "2"));
  SKIFF_EXPECT_OK(
      wait("skiff_ingress_request_duration_seconds_bucket{service=\"hello\",le=\"+Inf\"}", "3"));
  SKIFF_EXPECT_OK(wait("skiff_ingress_request_duration_seconds_sum{service=\"hello\"}", "7.0043"));
  SKIFF_EXPECT_OK(wait("skiff_ingress_in_flight{service=\"hello\"}", "3"));
  // The escaped label value arrives as the original string.
  auto esc = wait("skiff_test_escape_total == 5", "5");
  ASSERT_THAT(esc, ::skiff::testing::IsOk());
  EXPECT_EQ(esc->metric.value("v", ""), nasty);
  auto bad = wait("skiff_test_escape_total == 6", "6");
  ASSERT_THAT(bad, ::skiff::testing::IsOk());
  EXPECT_EQ(bad->metric.value("v", ""), "bad\xEF\xBF\xBD");  // U+FFFD

  // Values stay live: later scrapes see new counts and the collector's new gauge value.
  requests->Inc({"hello", "200"}, 8);
  in_flight = 0;
  SKIFF_EXPECT_OK(wait("skiff_ingress_requests_total{service=\"hello\",code=\"200\"}", "50"));
  SKIFF_EXPECT_OK(wait("skiff_ingress_in_flight{service=\"hello\"}", "0"));
  // Prometheus computes a rate from our counter (two scrapes at least 1 s apart).
  SKIFF_EXPECT_OK(wait(
      "count(rate(skiff_ingress_requests_total{service=\"hello\",code=\"200\"}[1m]) > 0)", "1"));

  // When the admin endpoint stops, Prometheus marks the target down.
  admin->Stop();
  SKIFF_EXPECT_OK(wait(absl::StrCat("up{job=\"", kJob, "\"}"), "0"));
}

// promtool (Prometheus' own strict text parser and its naming lint) accepts what /metrics
// serves with every family the node exposes (names as agreed for issue 3), including
// families that several collectors write.
TEST(PromtoolTest, NodeExpositionPassesPromtoolCheckMetrics) {
  ASSERT_EQ(::access(kPromtool, X_OK), 0) << kPromtool << " missing (scripts/setup.sh)";
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  MetricsRegistry m;
  const auto lat = MetricsRegistry::LatencyBuckets();
  m.AddCounter("skiff_ingress_requests_total", "Requests.", {"service", "code"})
      ->Inc({"hello", "200"});
  m.AddHistogram("skiff_ingress_request_duration_seconds", "Duration.", {"service"}, lat)
      ->Observe({"hello"}, 0.002);
  m.AddCounter("skiff_ingress_upstream_errors_total", "Upstream errors.", {"service", "kind"})
      ->Inc({"hello", "connect"});
  m.AddCounter("skiff_ingress_cold_starts_total", "Cold starts.", {"service"})->Inc({"hello"});
  m.AddHistogram("skiff_ingress_cold_start_seconds", "Cold start duration.", {"service"}, lat)
      ->Observe({"hello"}, 0.15);
  m.AddCollector([](GaugeWriter& w) {
    w.Family("skiff_ingress_in_flight", "In flight.");
    w.Sample({{"service", "hello"}}, 2);
    w.Family("skiff_ingress_queue_depth", "Queued.");
    w.Sample({{"service", "hello"}}, 0);
    w.Family("skiff_ingress_instances", "Instances by state.");
    w.Sample({{"service", "hello"}, {"state", "ready"}}, 1);
    w.Family("skiff_instances", "Instances by state.");
    w.Sample({{"state", "RUNNING"}}, 1);
  });
  for (const std::string id : {"hello-abcde", "hello-fghij"}) {  // one collector per instance
    m.AddCollector([id](GaugeWriter& w) {
      w.Family("skiff_cpu_throttle_transitions_total", "Throttle transitions.", "counter");
      w.Sample({{"instance", id}, {"direction", "throttle"}}, 3);
      w.Sample({{"instance", id}, {"direction", "unthrottle"}}, 3);
    });
  }
  SKIFF_ASSERT_OK_AND_ASSIGN(auto admin, AdminServer::Start("127.0.0.1:0", &m));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string body, HttpGet(admin->port(), "/metrics"));
  const std::string file = absl::StrCat(dir.path(), "/metrics.txt");
  {
    std::ofstream f(file);
    f << body;
  }
  const std::string cmd = absl::StrCat(kPromtool, " check metrics < ", file, " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "promtool status " << status << ": " << out << "\nexposition:\n"
      << body;
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace skiff::ingress
