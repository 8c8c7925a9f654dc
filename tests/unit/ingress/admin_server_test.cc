#include "agent/ingress/admin_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/ingress/metrics.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

// A minimal HTTP/1.1 client over one blocking loopback connection (5 s receive timeout).
class Client {
 public:
  static UniqueFd Connect(uint16_t port, int* err = nullptr) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{.tv_sec = 5, .tv_usec = 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      if (err != nullptr) *err = errno;
      return UniqueFd();
    }
    return fd;
  }

  explicit Client(uint16_t port) : fd_(Connect(port)) {}
  bool connected() const { return fd_.valid(); }

  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_.get(), s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one response; `head` = the request was HEAD (no body despite Content-Length).
  std::optional<Response> Read(bool head = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    Response r;
    std::vector<std::string> lines = absl::StrSplit(buf_.substr(0, end), "\r\n");
    buf_.erase(0, end + 4);
    std::vector<std::string> first = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
    if (first.size() < 2 || !absl::SimpleAtoi(first[1], &r.status)) return std::nullopt;
    size_t length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) return std::nullopt;
      std::string k = absl::AsciiStrToLower(lines[i].substr(0, colon));
      std::string v(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
      if (k == "content-length" && !absl::SimpleAtoi(v, &length)) return std::nullopt;
      r.headers.emplace_back(k, v);
    }
    if (head) return r;
    while (buf_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  // True when the peer closed the connection (EOF) within the receive timeout.
  bool ClosedByPeer() {
    char c;
    ssize_t n = ::recv(fd_.get(), &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char tmp[16384];
    ssize_t n = ::recv(fd_.get(), tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  UniqueFd fd_;
  std::string buf_;
};

std::string Get(const std::string& path, const std::string& extra = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", extra, "\r\n");
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    requests_ =
        metrics_.AddCounter("skiff_ingress_requests_total", "Requests.", {"service", "code"});
    requests_->Inc({"hello", "200"}, 41);
    auto s = AdminServer::Start("127.0.0.1:0", &metrics_);
    ASSERT_THAT(s, ::skiff::testing::IsOk());
    server_ = std::move(s).value();
    ASSERT_NE(server_->port(), 0);
  }

  MetricsRegistry metrics_;
  CounterFamily* requests_ = nullptr;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, MetricsHasPrometheusContentTypeAndTheRegistryBody) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(Get("/metrics")));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r->body, metrics_.Render());
  EXPECT_THAT(r->body,
              HasSubstr("skiff_ingress_requests_total{service=\"hello\",code=\"200\"} 41\n"));
}

TEST_F(AdminServerTest, KeepAliveServesTwoRequestsOnOneConnectionWithFreshValues) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(Get("/metrics")));
  auto r1 = c.Read();
  ASSERT_TRUE(r1.has_value());
  EXPECT_THAT(r1->body, HasSubstr("{service=\"hello\",code=\"200\"} 41\n"));
  requests_->Inc({"hello", "200"});
  ASSERT_TRUE(c.Send(Get("/metrics")));
  auto r2 = c.Read();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
  EXPECT_THAT(r2->body, HasSubstr("{service=\"hello\",code=\"200\"} 42\n"));
  // Two pipelined requests in one write are answered in order.
  ASSERT_TRUE(c.Send(Get("/healthz") + Get("/nope")));
  auto r3 = c.Read();
  auto r4 = c.Read();
  ASSERT_TRUE(r3.has_value() && r4.has_value());
  EXPECT_EQ(r3->status, 200);
  EXPECT_EQ(r4->status, 404);
}

TEST_F(AdminServerTest, Healthz) {
  Client c(server_->port());
  ASSERT_TRUE(c.Send(Get("/healthz?verbose=1")));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  Client c(server_->port());
  ASSERT_TRUE(c.Send(Get("/metricsx")));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(r->body, HasSubstr("not found"));
}

TEST_F(AdminServerTest, OtherMethodsAre405WithAllow) {
  Client c(server_->port());
  ASSERT_TRUE(c.Send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("allow"), "GET, HEAD");
  // The connection survives a 405 (the body was consumed).
  ASSERT_TRUE(c.Send("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r2 = c.Read();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 405);
}

TEST_F(AdminServerTest, HeadHasLengthButNoBody) {
  Client c(server_->port());
  ASSERT_TRUE(c.Send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.Read(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("content-length"), std::to_string(metrics_.Render().size()));
  // No body bytes: the next response starts right away.
  ASSERT_TRUE(c.Send(Get("/healthz")));
  auto r2 = c.Read();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(r2->body, "ok\n");
}

TEST_F(AdminServerTest, ConnectionCloseAndHttp10AreHonoured) {
  {
    Client c(server_->port());
    ASSERT_TRUE(c.Send(Get("/healthz", "Connection: close\r\n")));
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_TRUE(c.ClosedByPeer());
  }
  {
    Client c(server_->port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.0\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(c.ClosedByPeer());
  }
}

TEST_F(AdminServerTest, MalformedRequestGets400AndClose) {
  Client c(server_->port());
  ASSERT_TRUE(c.Send("GARBAGE\x01 / HTTP/9\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(AdminServerTest, OversizedHeadersGet431) {
  Client c(server_->port());
  ASSERT_TRUE(c.Send(Get("/metrics", absl::StrCat("X-Big: ", std::string(100000, 'a'), "\r\n"))));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  EXPECT_TRUE(c.ClosedByPeer());
}

// Open fds of this process → what they point at.
std::map<int, std::string> OpenFds() {
  std::map<int, std::string> fds;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (dirent* e = ::readdir(d)) {
    int fd;
    if (!absl::SimpleAtoi(e->d_name, &fd) || fd == ::dirfd(d)) continue;
    char target[256] = {};
    (void)!::readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), target, sizeof(target) - 1);
    fds[fd] = target;
  }
  ::closedir(d);
  return fds;
}

TEST(AdminServerFdTest, EveryFdTheServerOpensIsCloseOnExec) {
  // skiffd forks shims: none may inherit the admin listener or a scrape connection.
  MetricsRegistry m;
  const std::map<int, std::string> before = OpenFds();
  auto s = AdminServer::Start("127.0.0.1:0", &m);
  ASSERT_THAT(s, ::skiff::testing::IsOk());
  Client c((*s)->port());
  ASSERT_TRUE(c.Send(Get("/healthz")));
  ASSERT_TRUE(c.Read().has_value());  // the server holds an accepted socket now
  int sockets = 0;
  for (const auto& [fd, target] : OpenFds()) {
    if (before.contains(fd)) continue;
    if (absl::StartsWith(target, "socket:")) ++sockets;
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << "fd " << fd << " -> " << target;
  }
  EXPECT_EQ(sockets, 3);  // listener, accepted, client
}

TEST_F(AdminServerTest, StopClosesConnectionsAndReleasesThePort) {
  const uint16_t port = server_->port();
  Client idle(port);
  ASSERT_TRUE(idle.Send(Get("/healthz")));
  ASSERT_TRUE(idle.Read().has_value());  // a kept-alive, idle connection
  server_->Stop();
  EXPECT_TRUE(idle.ClosedByPeer());
  int err = 0;
  EXPECT_FALSE(Client::Connect(port, &err).valid());
  EXPECT_EQ(err, ECONNREFUSED);
  server_->Stop();  // idempotent
  // The same port can be bound again at once.
  auto again = AdminServer::Start(absl::StrCat("127.0.0.1:", port), &metrics_);
  ASSERT_THAT(again, ::skiff::testing::IsOk());
  EXPECT_EQ((*again)->port(), port);
  Client c(port);
  ASSERT_TRUE(c.Send(Get("/healthz")));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, StopIsPromptWhileClientsKeepConnecting) {
  // Clients that connect and send half a request (they would hold a session for the 30 s
  // idle timeout) while Stop() runs: Stop must close them all, not wait them out.
  std::atomic<bool> done{false};
  std::atomic<int> opened{0};
  std::thread clients([&] {
    std::vector<UniqueFd> held;
    while (!done) {
      UniqueFd fd = Client::Connect(server_->port());
      if (fd.valid() && ::send(fd.get(), "GET /metr", 9, MSG_NOSIGNAL) == 9) {
        ++opened;
        if (held.size() < 40) held.push_back(std::move(fd));
      }
    }
  });
  while (opened < 20) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto t0 = std::chrono::steady_clock::now();
  server_->Stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  done = true;
  clients.join();
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST_F(AdminServerTest, ConnectionsBeyondTheCapAreClosedAndSlotsComeBack) {
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 64; ++i) {
    held.push_back(std::make_unique<Client>(server_->port()));
    ASSERT_TRUE(held.back()->Send(Get("/healthz")));
    ASSERT_TRUE(held.back()->Read().has_value()) << "connection " << i;
  }
  Client over(server_->port());
  ASSERT_TRUE(over.connected());  // the kernel accepts; the server closes it unanswered
  EXPECT_TRUE(over.ClosedByPeer());
  held.pop_back();  // frees a slot once the server sees the EOF
  std::optional<Response> r;
  for (int attempt = 0; attempt < 50 && !r.has_value(); ++attempt) {
    Client c(server_->port());
    if (c.Send(Get("/healthz"))) r = c.Read();
    if (!r.has_value()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST(AdminServerStartTest, BadListenAddressesNameTheInput) {
  MetricsRegistry m;
  EXPECT_THAT(AdminServer::Start("nope", &m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"nope\": want host:port")));
  EXPECT_THAT(AdminServer::Start("127.0.0.1:abc", &m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad port \"abc\"")));
  EXPECT_THAT(AdminServer::Start("127.0.0.1:65536", &m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad port \"65536\"")));
  EXPECT_THAT(AdminServer::Start("127.0.0.1:", &m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad port \"\"")));
  EXPECT_THAT(AdminServer::Start("example.com:9090", &m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a numeric")));
  EXPECT_THAT(AdminServer::Start("127.0.0.1:0", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AdminServerStartTest, PortInUseIsAnError) {
  MetricsRegistry m;
  auto first = AdminServer::Start("127.0.0.1:0", &m);
  ASSERT_THAT(first, ::skiff::testing::IsOk());
  const std::string listen = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = AdminServer::Start(listen, &m);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("bind(", listen, "): EADDRINUSE")));
}

TEST(AdminServerStartTest, Ipv6Loopback) {
  MetricsRegistry m;
  auto s = AdminServer::Start("[::1]:0", &m);
  ASSERT_THAT(s, ::skiff::testing::IsOk());
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons((*s)->port());
  sa.sin6_addr = in6addr_loopback;
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
}

}  // namespace
}  // namespace skiff::ingress
