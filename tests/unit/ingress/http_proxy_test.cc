// The HTTP/1.1 reverse proxy against upstream servers written here (blocking Beast on
// threads) and a fake Router. Loopback only, port 0 everywhere.

#include "agent/ingress/http_proxy.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

// clang-format off
#include <utility>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
// clang-format on
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kGiB = 1ull << 30;
// Beast 1.74's body_limit(boost::none) rejects every body with a length: use the maximum.
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// ---------------------------------------------------------------------------------------
// Upstream: a blocking HTTP server, one thread per connection. Behaviour by path:
//   /echo      200, body = request body (Content-Length)
//   /headers   200, body = the request's header lines "name: value\n"; plus hop-by-hop
//              junk in the response (Keep-Alive, Connection: X-Up, X-Up)
//   /chunked   200, Transfer-Encoding: chunked, three chunks "alpha" "beta" "gamma"
//   /upload    200, body = number of body bytes received (streamed, not kept)
//   /download  200, Content-Length 1 GiB of 'x', written from one 1 MiB buffer
//   /slow      never answers; records when it sees its connection closed
//   /ws        101 Switching Protocols, then echoes raw bytes until EOF
//   /drop-2nd  answers once on a connection, then closes on the next request unanswered
//   /close-idle answers, then closes the connection (keep-alive advertised)
// Every response carries X-Conn: <connection number> (1-based).
class Upstream {
 public:
  Upstream() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~Upstream() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int ended() const { return ended_.load(); }  // connections finished (peer closed or error)
  bool slow_saw_close() const { return slow_saw_close_.load(); }
  std::string last_method() {
    std::lock_guard<std::mutex> l(mu_);
    return last_method_;
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec || stopping_) break;
      const int n = ++connections_;
      std::lock_guard<std::mutex> l(mu_);
      open_fds_.push_back(s.native_handle());
      threads_.emplace_back(
          [this, n, sock = std::move(s)]() mutable { Serve(std::move(sock), n); });
    }
  }

  void Serve(tcp::socket s, int conn) {
    beast::flat_buffer buf;
    buf.reserve(1 << 20);  // full-size reads for the 1 GiB bodies
    int on_conn = 0;
    std::vector<char> body_buf(64 * 1024);
    for (;;) {
      http::request_parser<http::buffer_body> p;
      p.body_limit(kUnlimited);
      error_code ec;
      http::read_header(s, buf, p, ec);
      if (ec) break;
      ++on_conn;
      ++requests_;
      auto& req = p.get();
      const std::string target(req.target());
      {
        std::lock_guard<std::mutex> l(mu_);
        last_method_ = std::string(req.method_string());
      }
      if (target == "/drop-2nd" && on_conn == 2) break;
      if (target == "/slow") {
        pollfd pfd{s.native_handle(), POLLRDHUP, 0};
        for (int i = 0; i < 100 && !stopping_; ++i) {  // up to 10 s
          if (::poll(&pfd, 1, 100) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            slow_saw_close_ = true;
            break;
          }
        }
        break;
      }
      if (beast::iequals(req[http::field::expect], "100-continue")) {
        static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::write(s, asio::buffer(kContinue, sizeof(kContinue) - 1), ec);
      }
      // Read the body: kept for /echo, counted otherwise.
      std::string body;
      uint64_t body_bytes = 0;
      while (!p.is_done()) {
        p.get().body().data = body_buf.data();
        p.get().body().size = body_buf.size();
        http::read(s, buf, p, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        const size_t n = body_buf.size() - p.get().body().size;
        body_bytes += n;
        if (target != "/upload") body.append(body_buf.data(), n);
      }
      if (ec) break;
      std::string head = "HTTP/1.1 200 OK\r\nX-Conn: " + std::to_string(conn) + "\r\n";
      if (target == "/ws") {
        std::string r =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nX-Conn: " +
            std::to_string(conn) + "\r\n\r\n";
        asio::write(s, asio::buffer(r), ec);
        if (buf.size() > 0) {  // bytes sent right behind the handshake
          asio::write(s, buf.data(), ec);
          buf.consume(buf.size());
        }
        char c[4096];
        for (;;) {
          size_t n = s.read_some(asio::buffer(c), ec);
          if (ec) break;
          asio::write(s, asio::buffer(c, n), ec);
          if (ec) break;
        }
        break;
      }
      if (target == "/chunked") {
        std::string r = head +
                        "Transfer-Encoding: chunked\r\n\r\n5\r\nalpha\r\n4\r\nbeta\r\n"
                        "5\r\ngamma\r\n0\r\n\r\n";
        asio::write(s, asio::buffer(r), ec);
      } else if (target == "/download") {
        std::string r = head + "Content-Length: " + std::to_string(kGiB) + "\r\n\r\n";
        asio::write(s, asio::buffer(r), ec);
        std::vector<char> chunk(1 << 20, 'x');
        for (uint64_t sent = 0; sent < kGiB && !ec; sent += chunk.size()) {
          asio::write(s, asio::buffer(chunk), ec);
        }
      } else {
        std::string out;
        std::string extra;
        if (target == "/upload") {
          out = std::to_string(body_bytes);
        } else if (target == "/headers") {
          for (const auto& f : req) {
            absl::StrAppend(&out, std::string(f.name_string()), ": ", std::string(f.value()), "\n");
          }
          extra = "Keep-Alive: timeout=5\r\nConnection: X-Up\r\nX-Up: secret\r\n";
        } else {
          out = body;
        }
        std::string r = head + extra + "Content-Length: " + std::to_string(out.size()) +
                        "\r\n\r\n" + (req.method() == http::verb::head ? "" : out);
        asio::write(s, asio::buffer(r), ec);
      }
      if (ec) break;
      if (target == "/close-idle") break;
    }
    error_code ignored;
    s.shutdown(tcp::socket::shutdown_both, ignored);
    {
      // Forget the fd before the socket closes it: ~Upstream must never shut down a
      // descriptor number something else has reused.
      std::lock_guard<std::mutex> l(mu_);
      std::erase(open_fds_, s.native_handle());
    }
    ++ended_;
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> ended_{0};
  std::atomic<bool> slow_saw_close_{false};
  std::mutex mu_;
  std::vector<int> open_fds_;
  std::vector<std::thread> threads_;
  std::string last_method_;
  std::thread accept_thread_;
};

// ---------------------------------------------------------------------------------------
// FakeRouter: Host (without :port) → a backend, an error, or "hold" (waits until Cancel).
class FakeRouter : public Router {
 public:
  struct Entry {
    std::shared_ptr<BackendInfo> backend;  // set: grant a lease
    int status = 0;
    std::string message;
    std::optional<absl::Duration> retry_after;
    bool hold = false;
  };

  static Entry Error(int status, std::string message,
                     std::optional<absl::Duration> retry_after = std::nullopt) {
    Entry e;
    e.status = status;
    e.message = std::move(message);
    e.retry_after = retry_after;
    return e;
  }
  static Entry Hold() {
    Entry e;
    e.hold = true;
    return e;
  }

  void Set(const std::string& host, Entry e) {
    absl::MutexLock l(&mu_);
    entries_[host] = std::move(e);
  }
  void Backend(const std::string& host, uint16_t port,
               absl::Duration timeout = absl::Seconds(300)) {
    auto b = std::make_shared<BackendInfo>();
    b->instance_id = host + "-i1";
    b->service = host;
    b->ip = "127.0.0.1";
    b->port = port;
    b->request_timeout = timeout;
    Entry e;
    e.backend = std::move(b);
    Set(host, std::move(e));
  }

  uint64_t Route(const RouteRequest& request,
                 absl::AnyInvocable<void(RouteOutcome)> done) override {
    // "svc.skiff.local:8080" → "svc"
    std::string host(request.host.substr(0, request.host.find_first_of(".:")));
    Entry e;
    uint64_t ticket = 0;
    {
      absl::MutexLock l(&mu_);
      last_pin_ = request.pin_instance;
      auto it = entries_.find(host);
      if (it == entries_.end()) {
        e.status = 404;
        e.message = "no service " + host;
      } else {
        e = it->second;
      }
      if (e.hold) {
        ticket = ++next_ticket_;
        held_[ticket] = std::move(done);
        return ticket;
      }
    }
    RouteOutcome out;
    out.service = host;
    if (e.backend) {
      int now = ++active_;
      int prev = max_active_.load();
      while (now > prev && !max_active_.compare_exchange_weak(prev, now)) {
      }
      out.lease = Lease(e.backend, [this] { --active_; });
    } else {
      out.http_status = e.status;
      out.message = e.message;
      out.retry_after = e.retry_after;
    }
    done(std::move(out));
    return 0;
  }

  void Cancel(uint64_t ticket) override {
    absl::AnyInvocable<void(RouteOutcome)> done;
    {
      absl::MutexLock l(&mu_);
      auto it = held_.find(ticket);
      if (it == held_.end()) return;
      done = std::move(it->second);
      held_.erase(it);
      ++cancelled_;
    }
    RouteOutcome out;
    out.http_status = 503;
    out.message = "cancelled";
    done(std::move(out));
  }

  // Answers every held request from the calling thread with a lease on `host`'s backend.
  void GrantHeld(const std::string& host) {
    std::map<uint64_t, absl::AnyInvocable<void(RouteOutcome)>> held;
    std::shared_ptr<BackendInfo> backend;
    {
      absl::MutexLock l(&mu_);
      held.swap(held_);
      backend = entries_[host].backend;
    }
    for (auto& [ticket, done] : held) {
      RouteOutcome out;
      out.service = host;
      ++active_;
      out.lease = Lease(backend, [this] { --active_; });
      done(std::move(out));
    }
  }

  // Router::Anticipate: records the sniffed host; the hold counts its release.
  CpuHold Anticipate(std::string_view host) override {
    {
      absl::MutexLock l(&mu_);
      anticipated_.emplace_back(host);
    }
    ++holds_;
    return CpuHold([this] { --holds_; });
  }
  std::vector<std::string> anticipated() {
    absl::MutexLock l(&mu_);
    return anticipated_;
  }
  int holds() const { return holds_.load(); }

  int active() const { return active_.load(); }
  int max_active() const { return max_active_.load(); }
  int cancelled() {
    absl::MutexLock l(&mu_);
    return cancelled_;
  }
  int held() {
    absl::MutexLock l(&mu_);
    return static_cast<int>(held_.size());
  }
  std::string last_pin() {
    absl::MutexLock l(&mu_);
    return last_pin_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, absl::AnyInvocable<void(RouteOutcome)>> held_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  int cancelled_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_pin_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> anticipated_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> holds_{0};
  std::atomic<int> active_{0};
  std::atomic<int> max_active_{0};
};

// ---------------------------------------------------------------------------------------
// Client helpers (blocking).
struct Client {
  explicit Client(uint16_t port) : socket(ioc) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    socket.set_option(tcp::no_delay(true));
    timeval tv{10, 0};  // no test read may hang
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void Send(const std::string& raw) { asio::write(socket, asio::buffer(raw)); }
  http::response<http::string_body> Read(error_code* ec_out = nullptr, bool head = false) {
    http::response_parser<http::string_body> p;
    p.body_limit(kUnlimited);
    if (head) p.skip(true);
    error_code ec;
    http::read(socket, buf, p, ec);
    if (ec_out != nullptr)
      *ec_out = ec;
    else
      EXPECT_FALSE(ec) << ec.message();
    return p.release();
  }
  http::response<http::string_body> Get(const std::string& host, const std::string& target,
                                        const std::string& extra = "") {
    Send("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n");
    return Read();
  }
  // True when the peer closed the connection (EOF) within the receive timeout.
  bool SeesEof() {
    char c;
    error_code ec;
    if (buf.size() > 0) return false;
    socket.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
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

// Samples VmRSS every 20 ms while alive; peak() is the highest seen.
class RssSampler {
 public:
  RssSampler() : base_(VmRssKiB()), peak_(base_) {
    thread_ = std::thread([this] {
      while (!stop_) {
        uint64_t v = VmRssKiB();
        if (v > peak_) peak_ = v;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  ~RssSampler() {
    stop_ = true;
    thread_.join();
  }
  uint64_t base() const { return base_; }
  uint64_t peak() const { return peak_.load(); }

 private:
  uint64_t base_;
  std::atomic<uint64_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

template <typename Pred>
bool WaitFor(Pred pred, absl::Duration limit = absl::Seconds(5)) {
  const absl::Time end = absl::Now() + limit;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

class HttpProxyTest : public ::testing::Test {
 protected:
  void StartProxy(HttpProxyOptions opts = {}) {
    opts.listen = "127.0.0.1:0";
    auto p = HttpProxy::Start(opts, &router_, nullptr);
    ASSERT_THAT(p, skiff::testing::IsOk());
    proxy_ = std::move(p).value();
  }
  void SetUp() override {
    router_.Backend("svc", upstream_.port());
    StartProxy();
  }
  void TearDown() override {
    if (proxy_) proxy_->Stop();
    EXPECT_EQ(router_.active(), 0) << "a lease outlived its request";
  }
  uint16_t port() const { return proxy_->port(); }

  Upstream upstream_;
  FakeRouter router_;
  std::unique_ptr<HttpProxy> proxy_;
};

TEST_F(HttpProxyTest, KeepAliveBothSidesOneUpstreamConnectionFor100Requests) {
  Client c(port());
  for (int i = 0; i < 100; ++i) {
    auto res = c.Get("svc.skiff.local", "/echo");
    ASSERT_EQ(res.result_int(), 200) << i;
    EXPECT_EQ(res["X-Conn"], "1");
    EXPECT_TRUE(res.keep_alive());
  }
  EXPECT_EQ(upstream_.requests(), 100);
  EXPECT_EQ(upstream_.connections(), 1);
  EXPECT_TRUE(WaitFor([&] { return router_.active() == 0; }));
}

TEST_F(HttpProxyTest, OneConnectionAlternatingServicesReachesEachOwnBackend) {
  Upstream other;
  router_.Backend("other", other.port());
  Client c(port());
  for (int i = 0; i < 6; ++i) {
    auto res = c.Get(i % 2 == 0 ? "svc" : "other", "/echo");
    ASSERT_EQ(res.result_int(), 200) << i;
  }
  EXPECT_EQ(upstream_.requests(), 3);
  EXPECT_EQ(other.requests(), 3);
  // Each backend's pooled connection was reused, not mixed up with the other's.
  EXPECT_EQ(upstream_.connections(), 1);
  EXPECT_EQ(other.connections(), 1);
}

TEST_F(HttpProxyTest, PostEchoWithContentLengthAndChunked) {
  Client c(port());
  c.Send("POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 11\r\n\r\nhello world");
  auto res = c.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "hello world");
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\nchunk-\r\n3\r\none\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n");
  res = c.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "chunk-oneabcdefghijklmnopqrstuvwxyz");
  // A repeated Content-Length reaches the upstream as one number.
  c.Send("POST /headers HTTP/1.1\r\nHost: svc\r\nContent-Length: 3, 3\r\n\r\nabc");
  res = c.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_THAT(res.body(), HasSubstr("Content-Length: 3\n"));
  // Content-Length with Transfer-Encoding is refused (request smuggling), and the
  // connection closed.
  Client smuggler(port());
  smuggler.Send(
      "POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(smuggler.Read().result_int(), 400);
  EXPECT_TRUE(smuggler.SeesEof());
  // Still the same client and upstream connections.
  res = c.Get("svc", "/echo");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(upstream_.connections(), 1);
}

TEST_F(HttpProxyTest, ChunkedResponseRelayedChunked) {
  Client c(port());
  c.Send("GET /chunked HTTP/1.1\r\nHost: svc\r\n\r\n");
  http::response_parser<http::string_body> p;
  http::read(c.socket, c.buf, p);
  EXPECT_TRUE(p.chunked());
  EXPECT_EQ(p.get().body(), "alphabetagamma");
  EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);  // keep-alive after a chunked body

  // An HTTP/1.0 client gets the body close-delimited instead.
  Client old(port());
  old.Send("GET /chunked HTTP/1.0\r\nHost: svc\r\n\r\n");
  auto res = old.Read();
  EXPECT_EQ(res.body(), "alphabetagamma");
  EXPECT_EQ(res.count(http::field::transfer_encoding), 0u);
  EXPECT_TRUE(old.SeesEof());
}

TEST_F(HttpProxyTest, HeadAnd100ContinueAndPin) {
  Client c(port());
  c.Send("HEAD /echo HTTP/1.1\r\nHost: svc\r\n\r\n");
  error_code ec;
  auto head = c.Read(&ec, /*head=*/true);
  EXPECT_FALSE(ec);
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(upstream_.last_method(), "HEAD");

  // Expect: 100-continue: the upstream's 100 comes through before the body is sent.
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
      "X-Skiff-Instance: svc-i1\r\n\r\n");
  auto interim = c.Read();
  EXPECT_EQ(interim.result_int(), 100);
  c.Send("ping");
  auto res = c.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "ping");
  EXPECT_EQ(router_.last_pin(), "svc-i1");
  EXPECT_EQ(upstream_.connections(), 1);
}

TEST_F(HttpProxyTest, HopByHopHeadersDroppedAndForwardedHeadersSet) {
  proxy_->Stop();
  HttpProxyOptions one_thread;  // one upstream pool, so the second client reuses its entry
  one_thread.threads = 1;
  StartProxy(one_thread);
  Client c(port());
  c.Send(
      "GET /headers HTTP/1.1\r\nHost: svc.skiff.local:8080\r\n"
      "Connection: close, X-Foo\r\nX-Foo: hidden\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\n"
      "Proxy-Authorization: Basic c2VjcmV0\r\nX-Forwarded-For: 10.1.2.3\r\n"
      "X-Skiff-Instance: svc-i1\r\nX-Bar: visible\r\n\r\n");
  auto res = c.Read();
  ASSERT_EQ(res.result_int(), 200);
  const std::string& seen = res.body();
  for (const char* gone : {"Connection:", "X-Foo:", "Keep-Alive:", "TE:", "Proxy-Authorization:"}) {
    EXPECT_THAT(seen, Not(HasSubstr(gone))) << seen;
  }
  EXPECT_THAT(seen, HasSubstr("Host: svc.skiff.local:8080\n"));
  EXPECT_THAT(seen, HasSubstr("X-Bar: visible\n"));
  EXPECT_THAT(seen, HasSubstr("X-Skiff-Instance: svc-i1\n"));
  EXPECT_THAT(seen, HasSubstr("X-Forwarded-For: 10.1.2.3, 127.0.0.1\n"));
  EXPECT_THAT(seen, HasSubstr("X-Forwarded-Proto: http\n"));
  EXPECT_THAT(seen, HasSubstr("X-Forwarded-Host: svc.skiff.local:8080\n"));
  // The upstream's own hop-by-hop fields do not reach the client; the client asked to close.
  EXPECT_EQ(res.count("X-Up"), 0u);
  EXPECT_EQ(res.count(http::field::keep_alive), 0u);
  EXPECT_EQ(res[http::field::connection], "close");
  EXPECT_TRUE(c.SeesEof());
  // The upstream connection itself stayed pooled (the client's close is hop-by-hop).
  Client c2(port());
  EXPECT_EQ(c2.Get("svc", "/echo")["X-Conn"], "1");
}

TEST_F(HttpProxyTest, RouterErrorsAnsweredWithStatusBodyAndRetryAfter) {
  router_.Set("full", FakeRouter::Error(429, "queue full", absl::Seconds(1.5)));
  router_.Set("busy", FakeRouter::Error(503, "queue wait expired", absl::Milliseconds(200)));
  Client c(port());
  auto res = c.Get("nope.skiff.local", "/");
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_EQ(res.body(), "no service nope\n");
  EXPECT_EQ(res.count(http::field::retry_after), 0u);
  res = c.Get("full", "/");
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res.body(), "queue full\n");
  EXPECT_EQ(res[http::field::retry_after], "2");
  res = c.Get("busy:80", "/");
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res.body(), "queue wait expired\n");
  EXPECT_EQ(res[http::field::retry_after], "1");
  EXPECT_TRUE(res.keep_alive());
  EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);  // same connection, still usable
}

TEST_F(HttpProxyTest, RequestTimeoutGives504AndClosesUpstream) {
  router_.Backend("slowsvc", upstream_.port(), absl::Milliseconds(300));
  Client c(port());
  const absl::Time start = absl::Now();
  auto res = c.Get("slowsvc", "/slow");
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(res.result_int(), 504);
  EXPECT_THAT(res.body(), HasSubstr("timed out"));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_TRUE(WaitFor([&] { return upstream_.slow_saw_close(); }))
      << "the upstream connection was not closed";
  std::printf("504 after %.0f ms\n", absl::ToDoubleMilliseconds(took));
}

TEST_F(HttpProxyTest, RefusedConnectGives502) {
  uint16_t dead_port;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    dead_port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  router_.Backend("dead", dead_port);
  Client c(port());
  auto res = c.Get("dead", "/");
  EXPECT_EQ(res.result_int(), 502);
  EXPECT_THAT(res.body(), HasSubstr("refused"));
  EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);
}

TEST_F(HttpProxyTest, RequestAfterAQuietSpellIsAnticipatedBeforeRouting) {
  Client c(port());
  // A connection's first request: the Host is sniffed from the raw bytes (any case, spaces
  // trimmed, the port kept) and the hold is dropped once the request was routed. A second
  // request sent with it is served back to back (the connection is busy): no lookup. Sent
  // together so that no client-side delay can make the connection look quiet in between.
  c.Send(
      "GET /echo HTTP/1.1\r\nX-A: 1\r\nhOsT:  svc.skiff.local:8080 \r\n\r\n"
      "GET /echo HTTP/1.1\r\nHost: svc\r\n\r\n");
  EXPECT_EQ(c.Read().result_int(), 200);
  EXPECT_EQ(c.Read().result_int(), 200);
  EXPECT_THAT(router_.anticipated(), ElementsAre("svc.skiff.local:8080"));
  EXPECT_EQ(router_.holds(), 0);
  // Quiet again for longer than the threshold: anticipated again.
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);
  EXPECT_THAT(router_.anticipated(), ElementsAre("svc.skiff.local:8080", "svc"));
  // A header that arrives in pieces: no Host in the first bytes, so no hint; the request
  // is still served.
  absl::SleepFor(absl::Milliseconds(20));
  c.Send("GET /echo HTTP/1.1\r\nHo");
  absl::SleepFor(absl::Milliseconds(20));
  c.Send("st: svc\r\n\r\n");
  EXPECT_EQ(c.Read().result_int(), 200);
  EXPECT_EQ(router_.anticipated().size(), 2u);
  EXPECT_EQ(router_.holds(), 0);
}

// Busy polling: requests are served as usual, the threads stop polling once the window
// after the last event is over (the process is near idle again), and Stop still joins.
TEST_F(HttpProxyTest, BusyPollServesThenSleeps) {
  proxy_->Stop();
  HttpProxyOptions opts;
  opts.busy_poll = absl::Microseconds(200);
  StartProxy(opts);
  {
    Client c(port());
    for (int i = 0; i < 50; ++i) ASSERT_EQ(c.Get("svc", "/echo").result_int(), 200);
  }
  absl::SleepFor(absl::Milliseconds(50));  // the connection's end is handled, then quiet
  auto cpu_seconds = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  const double before = cpu_seconds();
  absl::SleepFor(absl::Milliseconds(500));
  const double idle_cpu = cpu_seconds() - before;
  // Two threads spinning would burn ~1 s of CPU in 500 ms; sleeping ones almost nothing
  // (the sweep timer wakes each once a second).
  EXPECT_LT(idle_cpu, 0.05) << "the proxy threads kept polling while idle";
  const absl::Time stop_start = absl::Now();
  proxy_->Stop();
  EXPECT_LT(absl::Now() - stop_start, absl::Seconds(2));
}

TEST_F(HttpProxyTest, StalePooledConnectionsRetriedTransparently) {
  Client c(port());
  // The upstream closes its side after answering (idle close, seen when taken from the pool).
  EXPECT_EQ(c.Get("svc", "/close-idle").result_int(), 200);
  absl::SleepFor(absl::Milliseconds(50));
  auto res = c.Get("svc", "/echo");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res["X-Conn"], "2");
  // The upstream drops the second request on a connection without answering (a close
  // racing the request): the GET is retried once on a fresh connection. Connection 2 has
  // served /echo, so it drops this one; connection 3 answers it.
  res = c.Get("svc", "/drop-2nd");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res["X-Conn"], "3");
  res = c.Get("svc", "/drop-2nd");  // the second on connection 3: dropped, retried on 4
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res["X-Conn"], "4");
  EXPECT_EQ(upstream_.connections(), 4);
  EXPECT_EQ(upstream_.requests(), 6);
}

TEST_F(HttpProxyTest, IdleTimeoutsCloseClientAndPooledUpstreamConnections) {
  proxy_->Stop();
  HttpProxyOptions opts;
  opts.client_idle_timeout = absl::Milliseconds(300);
  opts.upstream_idle_timeout = absl::Milliseconds(300);
  StartProxy(opts);
  Client c(port());
  EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);
  EXPECT_EQ(upstream_.ended(), 0);
  const absl::Time idle_since = absl::Now();
  EXPECT_TRUE(c.SeesEof()) << "the idle client connection was not closed";
  const absl::Duration client_idle = absl::Now() - idle_since;
  EXPECT_GE(client_idle, absl::Milliseconds(250));
  EXPECT_LT(client_idle, absl::Seconds(3));
  // The pooled upstream connection goes at the next sweep (once a second).
  EXPECT_TRUE(WaitFor([&] { return upstream_.ended() == 1; }, absl::Seconds(4)));
}

TEST_F(HttpProxyTest, MalformedRequestIs400AndHugeHeaderIs431) {
  proxy_->Stop();
  HttpProxyOptions opts;
  opts.max_header_bytes = 4096;
  StartProxy(opts);
  Client bad(port());
  bad.Send("GARBAGE\x01 / HTTP/1.1\r\nHost: svc\r\n\r\n");
  EXPECT_EQ(bad.Read().result_int(), 400);
  EXPECT_TRUE(bad.SeesEof());

  Client nohost(port());
  nohost.Send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(nohost.Read().result_int(), 400);

  Client big(port());
  big.Send("GET /echo HTTP/1.1\r\nHost: svc\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n");
  EXPECT_EQ(big.Read().result_int(), 431);
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(HttpProxyTest, ClientGoneWhileQueuedCancelsTheWait) {
  router_.Set("held", FakeRouter::Hold());
  {
    Client c(port());
    c.Send("GET / HTTP/1.1\r\nHost: held\r\n\r\n");
    ASSERT_TRUE(WaitFor([&] { return router_.held() == 1; }));
  }  // client closes
  EXPECT_TRUE(WaitFor([&] { return router_.cancelled() == 1; }));
}

TEST_F(HttpProxyTest, QueuedRequestForwardedWhenTheLeaseArrivesLater) {
  router_.Set("held", FakeRouter::Hold());
  Client c(port());
  c.Send("POST /echo HTTP/1.1\r\nHost: held\r\nContent-Length: 6\r\n\r\nqueued");
  ASSERT_TRUE(WaitFor([&] { return router_.held() == 1; }));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(upstream_.requests(), 0);
  std::thread granter([&] { router_.GrantHeld("svc"); });  // another thread, as a gate would
  granter.join();
  auto res = c.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "queued");
  EXPECT_EQ(router_.cancelled(), 0);
  EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);  // the connection carries on
}

TEST_F(HttpProxyTest, StopCancelsWaitingRequests) {
  router_.Set("held", FakeRouter::Hold());
  Client c(port());
  c.Send("GET / HTTP/1.1\r\nHost: held\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return router_.held() == 1; }));
  proxy_->Stop();
  EXPECT_EQ(router_.cancelled(), 1);
  EXPECT_TRUE(c.SeesEof());
}

TEST_F(HttpProxyTest, WebSocketUpgradeSplicedBothWays) {
  Client c(port());
  c.Send(
      "GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  http::response_parser<http::empty_body> p;
  p.skip(true);
  http::read_header(c.socket, c.buf, p);
  EXPECT_EQ(p.get().result_int(), 101);
  EXPECT_TRUE(beast::iequals(p.get()[http::field::upgrade], "websocket"));
  EXPECT_TRUE(beast::iequals(p.get()[http::field::connection], "upgrade"));
  EXPECT_EQ(router_.active(), 1) << "the lease is held while the tunnel is open";
  // A masked WebSocket text frame "hello" (RFC 6455 §5.7) and some raw bytes: echoed as is.
  const std::string frame("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  for (const std::string& msg : {frame, std::string(100000, 'w'), std::string("bye")}) {
    c.Send(msg);
    std::string got(msg.size(), '\0');
    size_t have = std::min(c.buf.size(), got.size());
    asio::buffer_copy(asio::buffer(got), c.buf.data(), have);
    c.buf.consume(have);
    asio::read(c.socket, asio::buffer(got.data() + have, got.size() - have));
    EXPECT_EQ(got, msg);
  }
  c.socket.close();
  EXPECT_TRUE(WaitFor([&] { return router_.active() == 0; }));
}

// A raw TCP upstream for h2c: takes one connection, reads `expect` bytes, answers with
// kH2Reply, then echoes bytes until EOF.
constexpr std::string_view kH2Reply = "SERVER-H2-BYTES";
class RawUpstream {
 public:
  explicit RawUpstream(size_t expect)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this, expect] {
      error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec) return;
      fd_ = s.native_handle();
      std::string got(expect, '\0');
      asio::read(s, asio::buffer(got), ec);
      if (ec) return;
      {
        std::lock_guard<std::mutex> l(mu_);
        received_ = got;
      }
      asio::write(s, asio::buffer(kH2Reply.data(), kH2Reply.size()), ec);
      char buf[4096];
      while (!ec) {
        size_t n = s.read_some(asio::buffer(buf), ec);
        if (!ec) asio::write(s, asio::buffer(buf, n), ec);
      }
      fd_ = -1;
    });
  }
  ~RawUpstream() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (int fd = fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string received() {
    std::lock_guard<std::mutex> l(mu_);
    return received_;
  }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::atomic<int> fd_{-1};
  std::mutex mu_;
  std::string received_;
  std::thread thread_;
};

std::string H2Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  const uint32_t n = payload.size();
  std::string f = {char(n >> 16),      char(n >> 8),      char(n),
                   char(type),         char(flags),       char(stream >> 24),
                   char(stream >> 16), char(stream >> 8), char(stream)};
  return f + payload;
}

std::string H2HeaderBlock(const std::vector<std::pair<std::string, std::string>>& headers) {
  nghttp2_hd_deflater* def = nullptr;
  EXPECT_EQ(nghttp2_hd_deflate_new(&def, 4096), 0);
  std::vector<nghttp2_nv> nva;
  for (const auto& [k, v] : headers) {
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  std::string out(nghttp2_hd_deflate_bound(def, nva.data(), nva.size()), '\0');
  ssize_t n = nghttp2_hd_deflate_hd(def, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                    nva.data(), nva.size());
  nghttp2_hd_deflate_del(def);
  out.resize(n > 0 ? n : 0);
  return out;
}

TEST_F(HttpProxyTest, H2cPriorKnowledgeRoutedByAuthorityAndSpliced) {
  const std::string client_bytes =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + H2Frame(0x4, 0, 0, "") +
      H2Frame(0x1, 0x4, 1,
              H2HeaderBlock({{":method", "POST"},
                             {":scheme", "http"},
                             {":path", "/helloworld.Greeter/SayHello"},
                             {":authority", "grpc.skiff.local:8080"},
                             {"x-skiff-instance", "grpc-i9"}})) +
      H2Frame(0x0, 0x1, 1, std::string("\0\0\0\0\0", 5));  // DATA: an empty gRPC message
  RawUpstream raw(client_bytes.size());
  router_.Backend("grpc", raw.port());
  Client c(port());
  c.Send(client_bytes);
  std::string reply(kH2Reply.size(), '\0');
  asio::read(c.socket, asio::buffer(reply));
  EXPECT_EQ(reply, kH2Reply);
  EXPECT_EQ(raw.received(), client_bytes) << "the connection must reach the instance unchanged";
  EXPECT_EQ(router_.last_pin(), "grpc-i9");
  EXPECT_EQ(router_.active(), 1) << "one lease for the whole h2c connection";
  c.Send("more frames");
  std::string echo(11, '\0');
  asio::read(c.socket, asio::buffer(echo));
  EXPECT_EQ(echo, "more frames");
  c.socket.close();
  EXPECT_TRUE(WaitFor([&] { return router_.active() == 0; }));

  // An unknown :authority: nothing to answer in HTTP/2 terms here, the connection closes.
  Client lost(port());
  lost.Send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
            H2Frame(0x1, 0x4, 1, H2HeaderBlock({{":method", "GET"}, {":authority", "nope"}})));
  EXPECT_TRUE(lost.SeesEof());
  // Other versions are refused in HTTP/1.
  Client v3(port());
  v3.Send("GET / HTTP/3.0\r\nHost: svc\r\n\r\n");
  EXPECT_EQ(v3.Read().result_int(), 505);
}

TEST_F(HttpProxyTest, OneGiBUploadAndDownloadStreamWithFlatMemory) {
  std::vector<char> chunk(1 << 20, 'u');
  {
    Client c(port());
    RssSampler rss;
    const absl::Time start = absl::Now();
    c.Send("POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: " + std::to_string(kGiB) +
           "\r\n\r\n");
    for (uint64_t sent = 0; sent < kGiB; sent += chunk.size()) {
      asio::write(c.socket, asio::buffer(chunk));
    }
    auto res = c.Read();
    const double secs = absl::ToDoubleSeconds(absl::Now() - start);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), std::to_string(kGiB));
    std::printf("1 GiB upload: %.2f s (%.0f MiB/s), VmRSS %lu -> peak %lu KiB (+%ld KiB)\n", secs,
                1024 / secs, rss.base(), rss.peak(), static_cast<long>(rss.peak() - rss.base()));
    EXPECT_LT(rss.peak() - rss.base(), 64u * 1024);
  }
  {
    Client c(port());
    RssSampler rss;
    const absl::Time start = absl::Now();
    c.Send("GET /download HTTP/1.1\r\nHost: svc\r\n\r\n");
    http::response_parser<http::buffer_body> p;
    p.body_limit(kUnlimited);
    c.buf.reserve(1 << 20);
    http::read_header(c.socket, c.buf, p);
    ASSERT_EQ(p.get().result_int(), 200);
    uint64_t got = 0;
    bool all_x = true;
    while (!p.is_done()) {
      p.get().body().data = chunk.data();
      p.get().body().size = chunk.size();
      error_code ec;
      http::read(c.socket, c.buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      ASSERT_FALSE(ec) << ec.message();
      const size_t n = chunk.size() - p.get().body().size;
      got += n;
      if (n > 0 && (chunk[0] != 'x' || chunk[n - 1] != 'x')) all_x = false;
    }
    const double secs = absl::ToDoubleSeconds(absl::Now() - start);
    EXPECT_EQ(got, kGiB);
    EXPECT_TRUE(all_x);
    std::printf("1 GiB download: %.2f s (%.0f MiB/s), VmRSS %lu -> peak %lu KiB (+%ld KiB)\n", secs,
                1024 / secs, rss.base(), rss.peak(), static_cast<long>(rss.peak() - rss.base()));
    EXPECT_LT(rss.peak() - rss.base(), 64u * 1024);
  }
}

TEST_F(HttpProxyTest, ConcurrentClientsAllSucceed) {
  constexpr int kClients = 32;
  constexpr int kRequests = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Client c(port());
      for (int r = 0; r < kRequests; ++r) {
        const std::string body = absl::StrCat("client-", i, "-req-", r);
        c.Send(absl::StrCat("POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: ", body.size(),
                            "\r\n\r\n", body));
        error_code ec;
        auto res = c.Read(&ec);
        if (ec) return;
        if (res.result_int() == 200 && res.body() == body) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_LE(upstream_.connections(), kClients);
  EXPECT_GE(router_.max_active(), 2);
  std::printf(
      "%d clients x %d requests: %.2f s, %.0f req/s (information only; the test "
      "process also runs the upstream)\n",
      kClients, kRequests, secs, kClients * kRequests / secs);
}

TEST(HttpProxyMetricsTest, RequestsCountedByServiceAndCode) {
  Upstream upstream;
  FakeRouter router;
  router.Backend("svc", upstream.port());
  MetricsRegistry metrics;
  HttpProxyOptions opts;
  opts.listen = "127.0.0.1:0";
  opts.threads = 2;  // each proxy thread counts into the same series
  auto proxy = HttpProxy::Start(opts, &router, &metrics);
  ASSERT_THAT(proxy, skiff::testing::IsOk());
  for (int conn = 0; conn < 8; ++conn) {
    Client c((*proxy)->port());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(c.Get("svc", "/echo").result_int(), 200);
    if (conn % 2 == 0) {
      EXPECT_EQ(c.Get("nope", "/").result_int(), 404);
    }
  }
  (*proxy)->Stop();
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("skiff_ingress_requests_total{service=\"svc\",code=\"200\"} 24"))
      << text;
  EXPECT_THAT(text, HasSubstr("skiff_ingress_requests_total{service=\"nope\",code=\"404\"} 4"));
  EXPECT_THAT(text, HasSubstr("skiff_ingress_request_duration_seconds_count{service=\"svc\"} 24"));
}

TEST(HttpProxyStartTest, BadOptionsRejected) {
  FakeRouter router;
  HttpProxyOptions opts;
  opts.listen = "nonsense";
  EXPECT_THAT(HttpProxy::Start(opts, &router, nullptr),
              skiff::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nonsense")));
  opts.listen = "127.0.0.1:0";
  opts.threads = 0;
  EXPECT_THAT(HttpProxy::Start(opts, &router, nullptr),
              skiff::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threads")));
  // A port already taken without SO_REUSEPORT: bind fails, naming the address.
  asio::io_context ioc;
  tcp::acceptor taken(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  opts.threads = 1;
  opts.listen = absl::StrCat("127.0.0.1:", taken.local_endpoint().port());
  EXPECT_THAT(HttpProxy::Start(opts, &router, nullptr),
              skiff::testing::StatusIs(absl::StatusCode::kUnavailable, HasSubstr("bind(")));
}

}  // namespace
}  // namespace skiff::ingress
