#include "agent/ingress/admin_server.h"

// Boost 1.74's asio coroutine headers use std::exchange without including <utility>.
#include <utility>
// clang-format off
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::ingress {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxConnections = 64;  // scrapes are rare; more are closed at accept
constexpr size_t kHeaderLimit = 16 * 1024;
constexpr size_t kBodyLimit = 64 * 1024;  // GET needs none; bigger bodies end the connection
constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr auto kLingerTimeout = std::chrono::seconds(1);  // after a 400/431, at most
constexpr size_t kLingerBytes = 256 * 1024;
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Parses "host:port" or "[v6]:port"; the host must be a numeric address.
absl::StatusOr<tcp::endpoint> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin listen address \"", listen, "\": want host:port"));
  }
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535 || port_text.empty() ||
      port_text[0] == '+' || port_text[0] == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("admin listen address \"", listen, "\": bad port \"", port_text, "\""));
  }
  boost::system::error_code ec;
  asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("admin listen address \"", listen, "\": host \"",
                                                   host, "\" is not a numeric IPv4/IPv6 address"));
  }
  return tcp::endpoint(addr, static_cast<uint16_t>(port));
}

// A listening socket opened with SOCK_CLOEXEC (asio's own open() does not set it, and skiffd
// forks shims that must not inherit the admin port).
absl::StatusOr<UniqueFd> Listen(const tcp::endpoint& ep, const std::string& listen) {
  UniqueFd fd(::socket(ep.address().is_v6() ? AF_INET6 : AF_INET,
                       SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket(", listen, ")");
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_REUSEADDR, ", listen, ")");
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(ep.data()),
             static_cast<socklen_t>(ep.size())) != 0) {
    return ErrnoStatus(errno, "bind(", listen, ")");
  }
  if (::listen(fd.get(), 64) != 0) return ErrnoStatus(errno, "listen(", listen, ")");
  return fd;
}

}  // namespace

// Everything below runs on `thread` (the io_context's only thread) except Start and Stop,
// which hand work to it with asio::post.
struct AdminServer::Impl {
  explicit Impl(const MetricsRegistry* m) : metrics(m) {}

  asio::awaitable<void> AcceptLoop();
  asio::awaitable<void> Session(tcp::socket socket);
  static asio::awaitable<void> Linger(beast::tcp_stream& stream);
  http::response<http::string_body> Handle(const http::request<http::string_body>& req) const;

  const MetricsRegistry* metrics;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::set<beast::tcp_stream*> sessions;  // io thread only
  bool stopping = false;                  // io thread only; set by Stop()
  std::thread thread;
  uint16_t port = 0;
  tcp protocol = tcp::v4();
  std::mutex stop_mu;  // makes Stop() idempotent and safe from any thread
};

asio::awaitable<void> AdminServer::Impl::AcceptLoop() {
  asio::steady_timer backoff(ioc);
  for (;;) {
    boost::system::error_code ec;
    co_await acceptor.async_wait(tcp::acceptor::wait_read,
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !acceptor.is_open()) co_return;  // closed by Stop()
    const int c =
        ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of fds: back off instead of spinning on a readable listener.
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      continue;  // EAGAIN, ECONNABORTED, EINTR, ...: the next wait tells
    }
    UniqueFd conn(c);
    if (sessions.size() >= kMaxConnections) continue;  // closes it
    tcp::socket socket(ioc);
    socket.assign(protocol, conn.get(), ec);
    if (ec) continue;  // conn still owns (and closes) the fd
    conn.Release();    // owned by the socket now
    // Responses go out at once (a pipelined second response waited ~40 ms for Nagle).
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(ioc, Session(std::move(socket)), asio::detached);
  }
}

http::response<http::string_body> AdminServer::Impl::Handle(
    const http::request<http::string_body>& req) const {
  http::response<http::string_body> res;
  res.version(11);
  res.set(http::field::server, "skiffd");
  res.keep_alive(req.keep_alive());
  std::string_view target(req.target().data(), req.target().size());
  target = target.substr(0, target.find('?'));
  const bool get = req.method() == http::verb::get;
  const bool head = req.method() == http::verb::head;
  std::string body;
  if (target != "/metrics" && target != "/healthz") {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    body = "not found (try /metrics or /healthz)\n";
  } else if (!get && !head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    body = "method not allowed\n";
  } else if (target == "/metrics") {
    res.result(http::status::ok);
    res.set(http::field::content_type, kMetricsContentType);
    body = metrics->Render();
  } else {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    body = "ok\n";
  }
  res.content_length(body.size());
  if (!head) res.body() = std::move(body);
  return res;
}

asio::awaitable<void> AdminServer::Impl::Linger(beast::tcp_stream& stream) {
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(kLingerTimeout);
  std::vector<char> sink(4096);
  for (size_t drained = 0; !ec && drained < kLingerBytes;) {
    drained += co_await stream.async_read_some(asio::buffer(sink),
                                               asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> AdminServer::Impl::Session(tcp::socket socket) {
  // A session spawned just before Stop() ran starts after it: it must not outlive it.
  if (stopping) co_return;
  beast::tcp_stream stream(std::move(socket));
  sessions.insert(&stream);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    stream.expires_after(kIdleTimeout);
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        // Malformed request: say so, then close.
        http::response<http::string_body> res{ec == http::error::header_limit
                                                  ? http::status::request_header_fields_too_large
                                                  : http::status::bad_request,
                                              11};
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.keep_alive(false);
        res.body() = "bad request\n";
        res.prepare_payload();
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        // Lingering close: closing with unread request bytes would send a RST that can
        // destroy the answer before the client reads it. Half-close, then drain a little.
        if (!ec) co_await Linger(stream);
      }
      break;
    }
    http::response<http::string_body> res = Handle(parser.get());
    const bool keep_alive = res.keep_alive();
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !keep_alive) break;
  }
  sessions.erase(&stream);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.socket().close(ignored);
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(const std::string& listen,
                                                                const MetricsRegistry* metrics) {
  if (metrics == nullptr) return absl::InvalidArgumentError("admin server: metrics is null");
  SKIFF_ASSIGN_OR_RETURN(tcp::endpoint ep, ParseListen(listen));
  SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, Listen(ep, listen));
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus(errno, "getsockname(", listen, ")");
  }
  const uint16_t port =
      ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port
                                     : reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);

  std::unique_ptr<AdminServer> server(new AdminServer());
  server->impl_ = std::make_unique<Impl>(metrics);
  Impl& impl = *server->impl_;
  impl.port = port;
  impl.protocol = ep.protocol();
  boost::system::error_code ec;
  impl.acceptor.assign(ep.protocol(), fd.get(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("admin server: adopt listening socket (", listen, "): ", ec.message()));
  }
  fd.Release();  // owned by the acceptor now
  asio::co_spawn(impl.ioc, impl.AcceptLoop(), asio::detached);
  impl.thread = std::thread([&impl] { impl.ioc.run(); });
  return server;
}

AdminServer::~AdminServer() { Stop(); }

uint16_t AdminServer::port() const { return impl_->port; }

void AdminServer::Stop() {
  if (impl_ == nullptr) return;
  std::lock_guard<std::mutex> l(impl_->stop_mu);
  if (!impl_->thread.joinable()) return;
  Impl& impl = *impl_;
  // Closing the listener and every connection ends every coroutine; run() then returns.
  asio::post(impl.ioc, [&impl] {
    boost::system::error_code ignored;
    impl.stopping = true;
    impl.acceptor.close(ignored);
    for (beast::tcp_stream* s : impl.sessions) s->socket().close(ignored);
  });
  impl.thread.join();
}

}  // namespace skiff::ingress
