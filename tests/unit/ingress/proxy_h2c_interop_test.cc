// h2c through the HttpProxy with Debian's real HTTP/2 peers (nghttp2 1.52): nghttpd serves
// a document root over h2c on 127.0.0.1 as the one instance of service "web"; the proxy
// routes through a ServiceRouter (node domain skiff.test) whose pool holds that instance;
// nghttp (prior knowledge, and -u for the Upgrade: h2c dance) and h2load are the clients.
// nghttpd 1.52 does not do the HTTP/1.1 upgrade (prior knowledge only), so the -u path is
// tested against UpgradeH2Server below (libnghttp2, the library nghttpd is made of).
// Loopback only. Every child gets PDEATHSIG and is killed and reaped by RAII, the temp dir
// is removed by RAII.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/ingress/concurrency_gate.h"
#include "agent/ingress/http_proxy.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDomain[] = "skiff.test";
constexpr char kAuthority[] = "web.skiff.test";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "skiff-h2c-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A child process: stdout to `out_path`, stderr to `err_path` (empty: `out_path` too),
// PDEATHSIG SIGKILL. Killed (SIGKILL) and reaped on destruction if still running.
class Child {
 public:
  static absl::StatusOr<std::unique_ptr<Child>> Spawn(const std::vector<std::string>& argv,
                                                      const fs::path& out_path,
                                                      const fs::path& err_path = {}) {
    // Everything the child needs is prepared before fork: it only calls async-signal-safe
    // functions.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    UniqueFd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) return ErrnoStatus(errno, "open(", out_path.string(), ")");
    UniqueFd err;
    if (!err_path.empty()) {
      err = UniqueFd(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!err) return ErrnoStatus(errno, "open(", err_path.string(), ")");
    }
    const int err_fd = err ? err.get() : out.get();
    UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!devnull) return ErrnoStatus(errno, "open(/dev/null)");
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus(errno, "fork(", argv[0], ")");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      if (::dup2(devnull.get(), 0) < 0 || ::dup2(out.get(), 1) < 0 || ::dup2(err_fd, 2) < 0)
        ::_exit(127);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    auto child = std::unique_ptr<Child>(new Child(pid));
    child->pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!child->pidfd_) return ErrnoStatus(errno, "pidfd_open(", argv[0], ")");
    return child;
  }

  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  // The exit status (as from waitpid) once the child ended within `timeout`; nullopt if it
  // is still running (it is left running).
  std::optional<int> Wait(absl::Duration timeout) {
    if (reaped_) return status_;
    pollfd p{pidfd_.get(), POLLIN, 0};
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
    if (::poll(&p, 1, ms) <= 0) return std::nullopt;
    if (::waitpid(pid_, &status_, 0) != pid_) return std::nullopt;
    reaped_ = true;
    return status_;
  }
  bool Running() { return !Wait(absl::ZeroDuration()).has_value(); }

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  UniqueFd pidfd_;
  bool reaped_ = false;
  int status_ = 0;
};

// A client run to completion: its exit status (-1 if it had to be killed), stdout (with
// stderr unless err_path is given) and stderr (when err_path is given).
struct RunResult {
  int exit_code = -1;
  std::string output;
  std::string errors;
};

RunResult RunClient(const std::vector<std::string>& argv, const fs::path& out_path,
                    const fs::path& err_path = {}, absl::Duration timeout = absl::Seconds(60)) {
  RunResult r;
  auto child = Child::Spawn(argv, out_path, err_path);
  if (!child.ok()) {
    r.output = child.status().ToString();
    return r;
  }
  std::optional<int> status = (*child)->Wait(timeout);
  if (status && WIFEXITED(*status)) r.exit_code = WEXITSTATUS(*status);
  child->reset();  // kills it if it is still running
  r.output = ReadFile(out_path);
  if (!err_path.empty()) r.errors = ReadFile(err_path);
  if (!status) absl::StrAppend(&r.output, "\n[killed after ", absl::FormatDuration(timeout), "]");
  return r;
}

// A port free on 127.0.0.1 right now (nghttpd does not report the port it picks for 0).
uint16_t FreePort() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  return ntohs(addr.sin_port);
}

bool CanConnect(uint16_t port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen());
  return s;
}

// The pool's in-flight count drops to 0 (the proxy releases a spliced connection's lease
// when both sides are closed, just after the client exits).
bool WaitNoneInFlight(ServicePool& pool) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (pool.Stats().in_flight != 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  return pool.Stats().in_flight == 0;
}

size_t CountOf(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size()))
    ++n;
  return n;
}

// An h2c upstream that does what nghttpd does not: the HTTP/1.1 `Upgrade: h2c` dance
// (RFC 7540 §3.2), built on libnghttp2 (the library nghttpd is made of). It answers 101,
// hands the HTTP2-Settings to nghttp2_session_upgrade2, answers stream 1 (the upgraded
// request) and any later stream with the file at :path under `docroot` (404 if none).
// A request without `Upgrade: h2c` gets 400. Records every HTTP/1.1 request header block
// it received. One thread per connection; the destructor shuts every socket and joins.
class UpgradeH2Server {
 public:
  explicit UpgradeH2Server(fs::path docroot) : docroot_(std::move(docroot)) {
    listen_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_.get(), 64) != 0 ||
        ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~UpgradeH2Server() {
    stopping_ = true;
    ::shutdown(listen_.get(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(conn_threads_);
    }
    for (auto& t : threads) t.join();
  }

  uint16_t port() const { return port_; }
  std::vector<std::string> Requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  int streams_answered() const {
    absl::MutexLock lock(&mu_);
    return streams_answered_;
  }

 private:
  struct Stream {
    std::string path;
    std::string body;
    size_t sent = 0;
  };
  struct Conn {
    UpgradeH2Server* server;
    int fd;
    std::map<int32_t, Stream> streams;
  };

  void AcceptLoop() {
    while (!stopping_) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;
      }
      // As nghttpd does: without it, Nagle holds the small frames back behind delayed
      // ACKs (a 5 MB body took ~3 s).
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      absl::MutexLock lock(&mu_);
      open_fds_.insert(fd);
      conn_threads_.emplace_back([this, fd] {
        Serve(fd);
        absl::MutexLock l(&mu_);
        open_fds_.erase(fd);
        UniqueFd closer(fd);
      });
    }
  }

  static bool WriteAll(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(n);
    }
    return true;
  }

  void Serve(int fd) {
    std::string in;
    char buf[16384];
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      in.append(buf, n);
    }
    const std::string head = in.substr(0, end + 4);
    in.erase(0, end + 4);
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(head);
    }
    std::string path, settings;
    bool upgrade = false;
    bool first = true;
    for (absl::string_view line : absl::StrSplit(head, "\r\n", absl::SkipEmpty())) {
      if (first) {
        std::vector<std::string> parts = absl::StrSplit(line, ' ');
        if (parts.size() == 3) path = parts[1];
        first = false;
        continue;
      }
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
      const std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      if (name == "upgrade" && absl::AsciiStrToLower(value) == "h2c") upgrade = true;
      if (name == "http2-settings") settings = value;
    }
    std::string settings_payload;
    if (!upgrade || !absl::WebSafeBase64Unescape(settings, &settings_payload)) {
      WriteAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    if (!WriteAll(fd,
                  "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                  "Upgrade: h2c\r\n\r\n"))
      return;

    Conn conn{this, fd, {}};
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, &SendCb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &HeaderCb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &FrameRecvCb);
    nghttp2_session* session = nullptr;
    nghttp2_session_server_new(&session, cbs, &conn);
    nghttp2_session_callbacks_del(cbs);
    absl::Cleanup del_session = [session] { nghttp2_session_del(session); };
    if (nghttp2_session_upgrade2(session, reinterpret_cast<const uint8_t*>(settings_payload.data()),
                                 settings_payload.size(), /*head_request=*/0, nullptr) != 0)
      return;
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
    conn.streams[1].path = path;
    Respond(session, conn, 1);
    if (!in.empty() && nghttp2_session_mem_recv(
                           session, reinterpret_cast<const uint8_t*>(in.data()), in.size()) < 0)
      return;
    while (nghttp2_session_want_read(session) || nghttp2_session_want_write(session)) {
      if (nghttp2_session_send(session) != 0) return;
      if (!nghttp2_session_want_read(session)) break;
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      if (nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(buf), n) < 0) return;
    }
  }

  void Respond(nghttp2_session* session, Conn& conn, int32_t stream_id) {
    Stream& s = conn.streams[stream_id];
    std::string status = "404";
    const fs::path file = docroot_ / fs::path(s.path).relative_path();
    if (!s.path.empty() && s.path.find("..") == std::string::npos && fs::is_regular_file(file)) {
      s.body = ReadFile(file);
      status = "200";
    }
    const std::string length = std::to_string(s.body.size());
    nghttp2_nv nva[] = {
        {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(":status")),
         reinterpret_cast<uint8_t*>(status.data()), 7, status.size(), NGHTTP2_NV_FLAG_NONE},
        {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>("content-length")),
         reinterpret_cast<uint8_t*>(const_cast<char*>(length.data())), 14, length.size(),
         NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider provider{};
    provider.read_callback = &ReadCb;
    nghttp2_submit_response(session, stream_id, nva, 2, &provider);
    absl::MutexLock lock(&mu_);
    ++streams_answered_;
  }

  static ssize_t SendCb(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
    auto* conn = static_cast<Conn*>(user);
    if (!WriteAll(conn->fd, std::string_view(reinterpret_cast<const char*>(data), length)))
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    return static_cast<ssize_t>(length);
  }
  static int HeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* conn = static_cast<Conn*>(user);
    if (frame->hd.type == NGHTTP2_HEADERS &&
        std::string_view(reinterpret_cast<const char*>(name), namelen) == ":path")
      conn->streams[frame->hd.stream_id].path.assign(reinterpret_cast<const char*>(value),
                                                     valuelen);
    return 0;
  }
  static int FrameRecvCb(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto* conn = static_cast<Conn*>(user);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->hd.stream_id != 1 &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      conn->server->Respond(session, *conn, frame->hd.stream_id);
    return 0;
  }
  static ssize_t ReadCb(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                        uint32_t* data_flags, nghttp2_data_source*, void* user) {
    auto* conn = static_cast<Conn*>(user);
    Stream& s = conn->streams[stream_id];
    const size_t n = std::min(length, s.body.size() - s.sent);
    std::memcpy(buf, s.body.data() + s.sent, n);
    s.sent += n;
    if (s.sent == s.body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  const fs::path docroot_;
  UniqueFd listen_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  mutable absl::Mutex mu_;
  std::set<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> conn_threads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  int streams_answered_ ABSL_GUARDED_BY(mu_) = 0;
};

class H2cInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty()) << "mkdtemp failed";
    docroot_ = tmp_.path() / "docroot";
    out_ = tmp_.path() / "out";
    fs::create_directories(docroot_);
    fs::create_directories(out_);
    small_ = RandomBytes(6 * 1024, 1);
    big_ = RandomBytes(5 * 1024 * 1024, 2);
    WriteFile(docroot_ / "small.bin", small_);
    WriteFile(docroot_ / "big.bin", big_);

    // nghttpd on a free loopback port (retried if someone took the port meanwhile).
    nghttpd_log_ = tmp_.path() / "nghttpd.log";
    for (int attempt = 0; attempt < 5 && upstream_port_ == 0; ++attempt) {
      const uint16_t port = FreePort();
      ASSERT_NE(port, 0);
      SKIFF_ASSERT_OK_AND_ASSIGN(
          nghttpd_, Child::Spawn({"/usr/sbin/nghttpd", "--no-tls", "-v", "-a", "127.0.0.1", "-d",
                                  docroot_.string(), std::to_string(port)},
                                 nghttpd_log_));
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (absl::Now() < deadline && nghttpd_->Running()) {
        if (CanConnect(port)) {
          upstream_port_ = port;
          break;
        }
        absl::SleepFor(absl::Milliseconds(10));
      }
    }
    ASSERT_NE(upstream_port_, 0) << "nghttpd did not start: " << ReadFile(nghttpd_log_);
    // The probe connection (nghttpd's connection 1) is logged.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline && !absl::StrContains(NghttpdLog(), "closed"))
      absl::SleepFor(absl::Milliseconds(5));
    ASSERT_THAT(NghttpdLog(), HasSubstr("closed"));

    router_ = std::make_unique<ServiceRouter>(kDomain);
    pool_ = router_->PutService("web", PoolOptions{});
    BackendInfo info;
    info.instance_id = "web-h2c01";
    info.service = "web";
    info.ip = "127.0.0.1";
    info.port = upstream_port_;
    info.concurrency = 100;
    info.request_timeout = absl::Seconds(60);
    pool_->Add(info, nullptr);

    HttpProxyOptions options;
    options.listen = "127.0.0.1:0";
    options.threads = 2;
    SKIFF_ASSERT_OK_AND_ASSIGN(proxy_, HttpProxy::Start(options, router_.get(), nullptr));
    proxy_url_ = absl::StrCat("http://127.0.0.1:", proxy_->port());
  }

  void TearDown() override {
    if (proxy_) proxy_->Stop();
  }

  std::string NghttpdLog() const { return ReadFile(nghttpd_log_); }
  // The number of the last connection nghttpd accepted (it numbers them 1, 2, ... and logs
  // "[id=N]" at accept, before it reads a byte). A request that got its answer has had its
  // connection logged, so "no connection between these two requests" is a count.
  int LastConnId() const {
    const std::string log = NghttpdLog();
    int last = 0;
    for (size_t at = log.find("[id="); at != std::string::npos; at = log.find("[id=", at + 4))
      last = std::max(last, std::atoi(log.c_str() + at + 4));
    return last;
  }

  // nghttp fetching `path` through the proxy with :authority (or Host) `authority`. verbose: -nv
  // (frames on stdout, body discarded); else the body alone on stdout, messages in
  // `errors`. upgrade: -u (HTTP/1.1 Upgrade: h2c first) instead of prior knowledge.
  RunResult Nghttp(const std::string& path, const std::string& authority, bool verbose,
                   bool upgrade, const std::string& pin = "") {
    // With -u, nghttp's HTTP/1.1 request takes its Host from the URI unless given a
    // "host" header (an ":authority" one is ignored there).
    std::vector<std::string> argv = {
        "/usr/bin/nghttp", "-t", "20",
        absl::StrCat(upgrade ? "--header=host: " : "--header=:authority: ", authority)};
    if (!pin.empty()) argv.push_back("--header=x-skiff-instance: " + pin);
    if (verbose) argv.push_back("-nv");
    if (upgrade) argv.push_back("-u");
    argv.push_back(proxy_url_ + path);
    const std::string name = absl::StrCat("nghttp-", ++runs_);
    if (verbose) return RunClient(argv, tmp_.path() / (name + ".out"));
    return RunClient(argv, tmp_.path() / (name + ".out"), tmp_.path() / (name + ".err"));
  }

  // Fetches small.bin and big.bin both ways (-nv for the status and frames, then the body)
  // and checks them; returns how many requests were made.
  int FetchBothFiles(bool upgrade, const std::string& authority = kAuthority) {
    int requests = 0;
    for (const auto& [name, want] : std::vector<std::pair<std::string, const std::string*>>{
             {"small.bin", &small_}, {"big.bin", &big_}}) {
      SCOPED_TRACE(name);
      RunResult v = Nghttp("/" + name, authority, /*verbose=*/true, upgrade);
      ++requests;
      EXPECT_EQ(v.exit_code, 0) << v.output;
      EXPECT_THAT(v.output, HasSubstr(":status: 200")) << v.output;
      if (upgrade) {
        EXPECT_THAT(v.output, HasSubstr("HTTP Upgrade request")) << v.output;
        EXPECT_THAT(v.output, HasSubstr("HTTP Upgrade success")) << v.output;
      } else {
        EXPECT_THAT(v.output, Not(HasSubstr("HTTP Upgrade"))) << v.output;
      }
      EXPECT_THAT(v.output, Not(HasSubstr("not processed"))) << v.output;

      RunResult b = Nghttp("/" + name, authority, /*verbose=*/false, upgrade);
      ++requests;
      EXPECT_EQ(b.exit_code, 0) << b.errors;
      EXPECT_EQ(b.output.size(), want->size()) << b.errors;
      EXPECT_TRUE(b.output == *want) << "body differs from " << name;
    }
    return requests;
  }

  int runs_ = 0;
  TempDir tmp_;
  fs::path docroot_, out_, nghttpd_log_;
  std::string small_, big_;
  std::unique_ptr<Child> nghttpd_;
  uint16_t upstream_port_ = 0;
  // Declared in this order so the proxy (which borrows the router) goes first.
  std::unique_ptr<ServiceRouter> router_;
  std::shared_ptr<ServicePool> pool_;
  std::unique_ptr<HttpProxy> proxy_;
  std::string proxy_url_;
};

TEST_F(H2cInteropTest, PriorKnowledgeSmallAndLargeFiles) {
  const int requests = FetchBothFiles(/*upgrade=*/false);
  // nghttpd saw the requests, with the :authority the client sent (the bytes were spliced,
  // not rewritten).
  const std::string log = NghttpdLog();
  EXPECT_EQ(CountOf(log, ":path: /small.bin"), 2u);
  EXPECT_EQ(CountOf(log, ":path: /big.bin"), 2u);
  EXPECT_EQ(CountOf(log, absl::StrCat(":authority: ", kAuthority)), 4u);
  EXPECT_EQ(pool_->Stats().granted, static_cast<uint64_t>(requests));  // a lease per connection
  EXPECT_TRUE(WaitNoneInFlight(*pool_));
}

// nghttpd 1.52 speaks h2c by prior knowledge only: it sends its SETTINGS frame on accept
// and takes an HTTP/1.1 request for a bad preface (nghttp -u straight at it fails the
// same way: "Failed to parse HTTP Upgrade response header"). Through the proxy, the
// Upgrade: h2c request is forwarded and the non-HTTP/1 answer becomes a 502.
TEST_F(H2cInteropTest, UpgradeToPriorKnowledgeOnlyUpstreamIs502) {
  RunResult r = Nghttp("/small.bin", kAuthority, /*verbose=*/true, /*upgrade=*/true);
  EXPECT_THAT(r.output, HasSubstr("HTTP Upgrade request")) << r.output;
  EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 502 Bad Gateway")) << r.output;
  EXPECT_THAT(r.output, HasSubstr("HTTP Upgrade failed")) << r.output;
  EXPECT_EQ(pool_->Stats().granted, 1u);
  EXPECT_TRUE(WaitNoneInFlight(*pool_));
}

// nghttp -u (HTTP/1.1 GET with Upgrade: h2c, then HTTP/2 on the same connection) through
// the proxy to an upstream that does the upgrade (UpgradeH2Server, libnghttp2).
TEST_F(H2cInteropTest, UpgradeSmallAndLargeFiles) {
  UpgradeH2Server server(docroot_);
  ASSERT_NE(server.port(), 0);
  std::shared_ptr<ServicePool> pool = router_->PutService("up", PoolOptions{});
  BackendInfo info;
  info.instance_id = "up-h2c01";
  info.service = "up";
  info.ip = "127.0.0.1";
  info.port = server.port();
  info.request_timeout = absl::Seconds(60);
  pool->Add(info, nullptr);

  const int requests = FetchBothFiles(/*upgrade=*/true, "up.skiff.test");
  EXPECT_EQ(server.streams_answered(), requests);
  const std::vector<std::string> heads = server.Requests();
  EXPECT_EQ(heads.size(), static_cast<size_t>(requests));
  for (const std::string& head : heads) {
    // What the proxy forwarded: the upgrade with its HTTP2-Settings (named in Connection,
    // hop-by-hop, kept for the h2c upgrade).
    const std::string lower = absl::AsciiStrToLower(head);
    EXPECT_THAT(lower, HasSubstr("\r\nupgrade: h2c\r\n")) << head;
    EXPECT_THAT(lower, HasSubstr("\r\nhttp2-settings: ")) << head;
    EXPECT_THAT(lower, ::testing::ContainsRegex("\r\nconnection: [^\r]*http2-settings")) << head;
    EXPECT_THAT(lower, HasSubstr("\r\nhost: up.skiff.test\r\n")) << head;
  }
  EXPECT_EQ(pool->Stats().granted, static_cast<uint64_t>(requests));
  EXPECT_TRUE(WaitNoneInFlight(*pool));
  EXPECT_EQ(pool_->Stats().granted, 0u);  // nothing went to the other service
}

TEST_F(H2cInteropTest, UnknownAuthorityIsRefusedWithoutUpstreamContact) {
  const int conn_before = LastConnId();
  for (const std::string authority :
       {"nope.skiff.test", "web.other.test", "127.0.0.1", "-web.skiff.test"}) {
    SCOPED_TRACE(authority);
    RunResult r = Nghttp("/small.bin", authority, /*verbose=*/true, /*upgrade=*/false);
    // nghttp exits 0 here but says the request got no answer: the proxy closed the
    // connection.
    EXPECT_THAT(r.output, HasSubstr("Some requests were not processed")) << r.output;
    EXPECT_THAT(r.output, Not(HasSubstr(":status:"))) << r.output;
    EXPECT_THAT(r.output, Not(HasSubstr("recv SETTINGS"))) << r.output;
  }
  EXPECT_EQ(pool_->Stats().granted, 0u);
  // A good request now is nghttpd's next connection: none of the refused ones reached it.
  RunResult ok = Nghttp("/small.bin", kAuthority, /*verbose=*/true, /*upgrade=*/false);
  EXPECT_THAT(ok.output, HasSubstr(":status: 200")) << ok.output;
  EXPECT_EQ(LastConnId(), conn_before + 1) << NghttpdLog();
  const std::string log = NghttpdLog();
  EXPECT_THAT(log, Not(HasSubstr("nope.skiff.test")));
  EXPECT_THAT(log, Not(HasSubstr("web.other.test")));
}

// The pin header in the first request's HPACK block picks the instance: the known one is
// served, an unknown one gets the connection closed before nghttpd hears of it.
TEST_F(H2cInteropTest, PinHeaderInFirstRequest) {
  const int conn_before = LastConnId();
  RunResult unknown =
      Nghttp("/small.bin", kAuthority, /*verbose=*/true, /*upgrade=*/false, "web-zzzzz");
  EXPECT_THAT(unknown.output, HasSubstr("Some requests were not processed")) << unknown.output;
  EXPECT_THAT(unknown.output, Not(HasSubstr(":status:"))) << unknown.output;
  EXPECT_EQ(pool_->Stats().granted, 0u);
  RunResult ok = Nghttp("/small.bin", kAuthority, /*verbose=*/true, /*upgrade=*/false, "web-h2c01");
  EXPECT_THAT(ok.output, HasSubstr(":status: 200")) << ok.output;
  EXPECT_EQ(LastConnId(), conn_before + 1) << NghttpdLog();
  EXPECT_THAT(NghttpdLog(), HasSubstr("x-skiff-instance: web-h2c01"));
  EXPECT_THAT(NghttpdLog(), Not(HasSubstr("web-zzzzz")));
  EXPECT_EQ(pool_->Stats().granted, 1u);
}

TEST_F(H2cInteropTest, H2loadMultiplexesThroughTheProxy) {
  const fs::path log = tmp_.path() / "h2load.log";
  RunResult r =
      RunClient({"/usr/bin/h2load", "-n", "2000", "-c", "4", "-m", "10",
                 absl::StrCat("--header=:authority: ", kAuthority), proxy_url_ + "/small.bin"},
                log, {}, absl::Seconds(90));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("Application protocol: h2c")) << r.output;
  EXPECT_THAT(r.output, HasSubstr("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed"))
      << r.output;
  EXPECT_THAT(r.output, HasSubstr("status codes: 2000 2xx")) << r.output;
  // One lease per client connection: the 2000 streams rode 4 connections.
  EXPECT_EQ(pool_->Stats().granted, 4u);
  EXPECT_TRUE(WaitNoneInFlight(*pool_));
  EXPECT_EQ(CountOf(NghttpdLog(), ":path: /small.bin"), 2000u);
  const size_t at = r.output.find("finished in");
  if (at != std::string::npos) {
    std::printf("h2load through the proxy: %s\n",
                r.output.substr(at, r.output.find('\n', at) - at).c_str());
  }
}

}  // namespace
}  // namespace skiff::ingress
