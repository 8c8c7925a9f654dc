// The proxy relays request and response bodies at the same time (an upstream may echo as
// it reads), cuts a body the upstream answered early, and opens every fd close-on-exec.
// Upstreams and clients here are raw sockets opened with SOCK_CLOEXEC (so the fd check
// can demand FD_CLOEXEC of every new fd in the process). Loopback only, port 0.

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

// clang-format off
#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
// clang-format on
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "agent/ingress/http_proxy.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
constexpr size_t kPiece = 64 * 1024;

// The byte at offset `i` of a test body: not periodic in 64 KiB, so a lost, repeated or
// reordered piece shows.
char PatternByte(uint64_t i) { return static_cast<char>((i * 7 + (i >> 16)) % 251); }

void SetTimeouts(int fd, int seconds) {
  timeval tv{seconds, 0};  // raw reads and writes (Asio waits on its own after EAGAIN)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A blocking TCP server on 127.0.0.1:0, one thread per connection running `serve` on a
// socket that owns the accepted (SOCK_CLOEXEC) fd.
class RawUpstream {
 public:
  using Serve = std::function<void(tcp::socket&)>;
  explicit RawUpstream(Serve serve) : serve_(std::move(serve)) {
    listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (!listener_ || ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 ||
        ::listen(listener_.get(), 16) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      ADD_FAILURE() << "upstream listener: " << strerror(errno);
      return;
    }
    port_ = ntohs(sa.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~RawUpstream() {
    stopping_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);  // wakes accept4
    if (accept_thread_.joinable()) accept_thread_.join();
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int ended() const { return ended_.load(); }  // connections whose `serve` returned

 private:
  void AcceptLoop() {
    while (!stopping_) {
      const int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        break;
      }
      if (stopping_) {
        UniqueFd drop(c);
        break;
      }
      ++connections_;
      std::lock_guard<std::mutex> l(mu_);
      open_fds_.push_back(c);
      threads_.emplace_back([this, c] {
        asio::io_context ioc;
        tcp::socket s(ioc);
        error_code assign_ec;
        s.assign(tcp::v4(), c, assign_ec);
        if (!assign_ec) {
          SetTimeouts(c, 20);
          serve_(s);
          ++ended_;
          error_code ignored;
          s.shutdown(tcp::socket::shutdown_both, ignored);
        }
        {
          // Forget the fd before the socket closes it (the destructor shuts down the rest).
          std::lock_guard<std::mutex> l(mu_);
          std::erase(open_fds_, c);
        }
        if (assign_ec) UniqueFd drop(c);  // else the socket owns and closes it
      });
    }
  }

  Serve serve_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> ended_{0};
  std::mutex mu_;
  std::vector<int> open_fds_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

// Echo as it reads, request after request: answers with a chunked 200 at once, then each
// body piece read (what has arrived, at most 64 KiB) is written back as one chunk before
// the next is read. Never holds more than one piece.
void EchoAsItReads(tcp::socket& s) {
  beast::flat_buffer buf;
  std::vector<char> piece(kPiece);
  for (;;) {
    http::request_parser<http::buffer_body> p;
    p.body_limit(kUnlimited);
    error_code ec;
    http::read_header(s, buf, p, ec);
    if (ec) return;
    static constexpr char kHead[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    asio::write(s, asio::buffer(kHead, sizeof(kHead) - 1), ec);
    while (!ec && !p.is_done()) {
      p.get().body().data = piece.data();
      p.get().body().size = piece.size();
      http::read_some(s, buf, p, ec);  // what has arrived, not a full piece
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return;
      const size_t n = piece.size() - p.get().body().size;
      if (n == 0) continue;
      const std::string size_line = absl::StrFormat("%x\r\n", n);
      const std::vector<asio::const_buffer> chunk = {
          asio::buffer(size_line), asio::buffer(piece.data(), n), asio::buffer("\r\n", 2)};
      asio::write(s, chunk, ec);
    }
    if (ec) return;
    asio::write(s, asio::buffer("0\r\n\r\n", 5), ec);
    if (ec) return;
  }
}

// Answers 413 as soon as the request header is in, and closes without reading the body.
void AnswerEarly413(tcp::socket& s) {
  beast::flat_buffer buf;
  http::request_parser<http::buffer_body> p;
  p.body_limit(kUnlimited);
  error_code ec;
  http::read_header(s, buf, p, ec);
  if (ec) return;
  static constexpr char kAnswer[] =
      "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
      "too large";
  asio::write(s, asio::buffer(kAnswer, sizeof(kAnswer) - 1), ec);
}

// Answers 200 "early" (keep-alive) as soon as the request header is in, then reads and
// drops whatever comes until the connection ends.
void AnswerEarlyKeepAlive(tcp::socket& s) {
  beast::flat_buffer buf;
  http::request_parser<http::buffer_body> p;
  p.body_limit(kUnlimited);
  error_code ec;
  http::read_header(s, buf, p, ec);
  if (ec) return;
  static constexpr char kAnswer[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly";
  asio::write(s, asio::buffer(kAnswer, sizeof(kAnswer) - 1), ec);
  std::vector<char> sink(kPiece);
  while (!ec) s.read_some(asio::buffer(sink), ec);
}

// Every request gets "HTTP/1.1 200 OK" with body "ok" (request bodies are not expected).
void AnswerOk(tcp::socket& s) {
  beast::flat_buffer buf;
  for (;;) {
    http::request<http::empty_body> req;
    error_code ec;
    http::read(s, buf, req, ec);
    if (ec) return;
    static constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    asio::write(s, asio::buffer(kOk, sizeof(kOk) - 1), ec);
    if (ec) return;
  }
}

// Every host goes to one backend.
class OneBackendRouter : public Router {
 public:
  explicit OneBackendRouter(uint16_t port) : backend_(std::make_shared<BackendInfo>()) {
    backend_->instance_id = "svc-i1";
    backend_->service = "svc";
    backend_->ip = "127.0.0.1";
    backend_->port = port;
    backend_->request_timeout = absl::Seconds(30);  // bounds a deadlocked exchange
  }
  uint64_t Route(const RouteRequest&, absl::AnyInvocable<void(RouteOutcome)> done) override {
    RouteOutcome out;
    out.service = "svc";
    ++active_;
    out.lease = Lease(backend_, [this] { --active_; });
    done(std::move(out));
    return 0;
  }
  void Cancel(uint64_t) override {}
  int active() const { return active_.load(); }

 private:
  std::shared_ptr<BackendInfo> backend_;
  std::atomic<int> active_{0};
};

// A blocking client on a SOCK_CLOEXEC socket connected to the proxy.
struct RawClient {
  explicit RawClient(uint16_t port) : socket(ioc) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      ADD_FAILURE() << "connect to the proxy: " << strerror(errno);
      return;
    }
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SetTimeouts(fd.get(), 20);
    error_code ec;
    socket.assign(tcp::v4(), fd.get(), ec);
    if (ec) {
      ADD_FAILURE() << "assign: " << ec.message();
      return;
    }
    fd.Release();
  }
  asio::io_context ioc;
  tcp::socket socket;
  beast::flat_buffer buf;
};

uint64_t VmRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

std::unique_ptr<HttpProxy> StartProxy(Router* router, int threads = 1) {
  HttpProxyOptions opts;
  opts.listen = "127.0.0.1:0";
  opts.threads = threads;
  auto p = HttpProxy::Start(opts, router, nullptr);
  EXPECT_THAT(p, ::skiff::testing::IsOk());
  return p.ok() ? std::move(p).value() : nullptr;
}

TEST(ProxyDuplexTest, EchoAsItReads256MiBChunkedBothWaysWithFlatMemory) {
  constexpr uint64_t kTotal = 256ull << 20;
  RawUpstream upstream(EchoAsItReads);
  OneBackendRouter router(upstream.port());
  std::unique_ptr<HttpProxy> proxy = StartProxy(&router);
  ASSERT_NE(proxy, nullptr);
  RawClient c(proxy->port());

  const uint64_t rss_before = VmRssKiB();
  std::atomic<uint64_t> rss_peak{rss_before};
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done) {
      const uint64_t v = VmRssKiB();
      if (v > rss_peak) rss_peak = v;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  // The writer sends a chunked body of 256 MiB; meanwhile this thread reads the echo. A
  // proxy that sends the whole body before reading the response deadlocks here once the
  // socket buffers fill (the send and receive timeouts turn that into errors).
  std::atomic<bool> write_failed{false};
  std::thread writer([&] {
    error_code ec;
    static constexpr char kHead[] =
        "POST /echo HTTP/1.1\r\nHost: svc.skiff.local\r\nTransfer-Encoding: chunked\r\n\r\n";
    asio::write(c.socket, asio::buffer(kHead, sizeof(kHead) - 1), ec);
    std::vector<char> piece(kPiece);
    const std::string size_line = absl::StrFormat("%x\r\n", kPiece);
    for (uint64_t off = 0; off < kTotal && !ec; off += kPiece) {
      for (size_t i = 0; i < kPiece; ++i) piece[i] = PatternByte(off + i);
      const std::vector<asio::const_buffer> chunk = {asio::buffer(size_line), asio::buffer(piece),
                                                     asio::buffer("\r\n", 2)};
      asio::write(c.socket, chunk, ec);
    }
    if (!ec) asio::write(c.socket, asio::buffer("0\r\n\r\n", 5), ec);
    if (ec) write_failed = true;
  });

  http::response_parser<http::buffer_body> p;
  p.body_limit(kUnlimited);
  error_code ec;
  http::read_header(c.socket, c.buf, p, ec);
  uint64_t got = 0;
  uint64_t mismatches = 0;
  std::vector<char> piece(kPiece);
  while (!ec && !p.is_done()) {
    p.get().body().data = piece.data();
    p.get().body().size = piece.size();
    http::read(c.socket, c.buf, p, ec);
    if (ec == http::error::need_buffer) ec = {};
    const size_t n = piece.size() - p.get().body().size;
    for (size_t i = 0; i < n; ++i) {
      if (piece[i] != PatternByte(got + i)) ++mismatches;
    }
    got += n;
  }
  writer.join();
  done = true;
  sampler.join();
  EXPECT_FALSE(ec) << ec.message() << " after " << got << " bytes";
  EXPECT_FALSE(write_failed);
  EXPECT_EQ(p.get().result_int(), 200);
  EXPECT_EQ(got, kTotal);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_TRUE(p.get().keep_alive());
  // Flat memory: the proxy (and both test ends) hold fixed buffers only.
  EXPECT_LT(rss_peak - rss_before, 48u * 1024) << "RSS grew from " << rss_before << " KiB";

  // Both directions completed cleanly: the client connection and the upstream connection
  // serve the next request.
  static constexpr char kSecond[] =
      "POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello";
  asio::write(c.socket, asio::buffer(kSecond, sizeof(kSecond) - 1), ec);
  ASSERT_FALSE(ec) << ec.message();
  http::response<http::string_body> second;
  http::read(c.socket, c.buf, second, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(second.result_int(), 200);
  EXPECT_EQ(second.body(), "hello");
  EXPECT_EQ(upstream.connections(), 1);
  proxy->Stop();
  EXPECT_EQ(router.active(), 0);
}

TEST(ProxyDuplexTest, EarlyAnswerRelayedThenClientConnectionClosed) {
  RawUpstream upstream(AnswerEarly413);
  OneBackendRouter router(upstream.port());
  std::unique_ptr<HttpProxy> proxy = StartProxy(&router);
  ASSERT_NE(proxy, nullptr);
  RawClient c(proxy->port());
  // A 1 GiB body announced; the writer keeps sending until the proxy stops taking it.
  std::atomic<uint64_t> sent{0};
  std::thread writer([&] {
    error_code ec;
    const std::string head = absl::StrCat(
        "PUT /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: ", 1ull << 30, "\r\n\r\n");
    asio::write(c.socket, asio::buffer(head), ec);
    std::vector<char> piece(kPiece, 'u');
    while (!ec && sent < (1ull << 30)) {
      sent += asio::write(c.socket, asio::buffer(piece), ec);
    }
  });
  http::response<http::string_body> res;
  error_code ec;
  http::read(c.socket, c.buf, res, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_EQ(res.body(), "too large");
  EXPECT_FALSE(res.keep_alive());
  // Then the proxy closes the connection (after a lingering read of at most ~1 s).
  char byte;
  const auto t0 = std::chrono::steady_clock::now();
  c.socket.read_some(asio::buffer(&byte, 1), ec);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_LT(waited, 5.0);
  writer.join();  // its writes fail once the proxy closed
  EXPECT_LT(sent.load(), 1ull << 30);
  proxy->Stop();
  EXPECT_EQ(router.active(), 0);
}

TEST(ProxyDuplexTest, EarlyAnswerFromKeepAliveUpstreamCutsTheBodyAfterAGrace) {
  RawUpstream upstream(AnswerEarlyKeepAlive);
  OneBackendRouter router(upstream.port());
  std::unique_ptr<HttpProxy> proxy = StartProxy(&router);
  ASSERT_NE(proxy, nullptr);
  {
    RawClient c(proxy->port());
    std::thread writer([&] {
      error_code ec;
      const std::string head =
          absl::StrCat("POST /x HTTP/1.1\r\nHost: svc\r\nContent-Length: ", 1ull << 30, "\r\n\r\n");
      asio::write(c.socket, asio::buffer(head), ec);
      // Paced (6.4 MB/s): the body cannot end within the grace.
      std::vector<char> piece(kPiece, 'b');
      for (uint64_t sent = 0; !ec && sent < (1ull << 30);) {
        sent += asio::write(c.socket, asio::buffer(piece), ec);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    http::response<http::string_body> res;
    error_code ec;
    http::read(c.socket, c.buf, res, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "early");
    // The body keeps flowing for the grace (1 s), then is cut: the client connection ends.
    char byte;
    const auto t0 = std::chrono::steady_clock::now();
    c.socket.read_some(asio::buffer(&byte, 1), ec);
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
    EXPECT_GT(waited, 0.5);
    EXPECT_LT(waited, 5.0);
    writer.join();
  }
  // The upstream connection was closed, not pooled: the next request opens another.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (upstream.ended() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(upstream.ended(), 1);
  RawClient c2(proxy->port());
  static constexpr char kGet[] = "GET / HTTP/1.1\r\nHost: svc\r\n\r\n";
  error_code ec;
  asio::write(c2.socket, asio::buffer(kGet, sizeof(kGet) - 1), ec);
  http::response<http::string_body> res;
  http::read(c2.socket, c2.buf, res, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.body(), "early");
  EXPECT_EQ(upstream.connections(), 2);
  proxy->Stop();
  EXPECT_EQ(router.active(), 0);
}

TEST(ProxyDuplexTest, SmallPiecesRelayedAtOnceAndClientGoneMidBodyClosesTheUpstream) {
  RawUpstream upstream(EchoAsItReads);
  OneBackendRouter router(upstream.port());
  std::unique_ptr<HttpProxy> proxy = StartProxy(&router);
  ASSERT_NE(proxy, nullptr);
  {
    RawClient c(proxy->port());
    static constexpr char kHead[] =
        "POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n";
    error_code ec;
    asio::write(c.socket, asio::buffer(kHead, sizeof(kHead) - 1), ec);
    ASSERT_FALSE(ec) << ec.message();
    http::response_parser<http::buffer_body> p;
    http::read_header(c.socket, c.buf, p, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(p.get().result_int(), 200);
    // A small piece is relayed at once both ways (not held until 64 KiB gather).
    char piece[16];
    size_t got = 0;
    while (!ec && got < 5) {
      p.get().body().data = piece + got;
      p.get().body().size = sizeof(piece) - got;
      http::read_some(c.socket, c.buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      got = sizeof(piece) - p.get().body().size;
    }
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(std::string(piece, got), "hello");
    EXPECT_EQ(router.active(), 1);
  }  // the client closes mid-body
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((upstream.ended() < 1 || router.active() != 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(upstream.ended(), 1) << "the upstream connection stayed open";
  EXPECT_EQ(router.active(), 0) << "the lease outlived the client";
  proxy->Stop();
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

TEST(ProxyFdTest, EveryFdTheProxyOpensIsCloseOnExec) {
  // skiffd forks shims: none may inherit the ingress listener, a client connection or an
  // upstream connection. (The test's own sockets are SOCK_CLOEXEC too.)
  const std::map<int, std::string> before = OpenFds();
  {
    RawUpstream upstream(AnswerOk);
    OneBackendRouter router(upstream.port());
    std::unique_ptr<HttpProxy> proxy = StartProxy(&router, /*threads=*/2);
    ASSERT_NE(proxy, nullptr);
    RawClient c(proxy->port());
    static constexpr char kGet[] = "GET / HTTP/1.1\r\nHost: svc\r\n\r\n";
    error_code ec;
    asio::write(c.socket, asio::buffer(kGet, sizeof(kGet) - 1), ec);
    ASSERT_FALSE(ec) << ec.message();
    http::response<http::string_body> res;
    http::read(c.socket, c.buf, res, ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_EQ(res.body(), "ok");
    // Now open: 2 listeners, the accepted client connection, the pooled upstream connection
    // (proxy); the upstream's listener and accepted connection, the client (test).
    int sockets = 0;
    int others = 0;
    for (const auto& [fd, target] : OpenFds()) {
      if (before.contains(fd)) continue;
      if (absl::StartsWith(target, "socket:")) {
        ++sockets;
      } else {
        ++others;  // the io_contexts' epoll, eventfd, timerfd
      }
      EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << "fd " << fd << " -> " << target;
    }
    EXPECT_EQ(sockets, 7);
    EXPECT_GT(others, 0);
    proxy->Stop();
  }
  // And all of them are closed again.
  for (const auto& [fd, target] : OpenFds()) {
    EXPECT_TRUE(before.contains(fd)) << "fd " << fd << " -> " << target << " left open";
  }
}

}  // namespace
}  // namespace skiff::ingress
