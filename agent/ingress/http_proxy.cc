#include "agent/ingress/http_proxy.h"

#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/ingress/proxy_asio.h"
#include "agent/ingress/proxy_busy_poll.h"
#include "agent/ingress/proxy_metrics.h"
#include "agent/ingress/proxy_session.h"
#include "agent/ingress/proxy_upstream_pool.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::ingress {

using proxy::Acceptor;
using proxy::Await;
using proxy::error_code;
using proxy::Socket;
using proxy::Task;
using proxy::tcp;
using proxy::Timer;
namespace asio = proxy::asio;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

absl::StatusOr<tcp::endpoint> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("ingress listen address ", listen, ": want host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("ingress listen address ", listen, ": bad port"));
  }
  error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("ingress listen address ", listen, ": bad IP address ", host));
  }
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

}  // namespace

// One per proxy thread: its own io_context (so a connection never changes threads and
// nothing is locked), an SO_REUSEPORT acceptor on the shared port, an upstream pool.
struct ProxyWorker {
  ProxyWorker(const HttpProxyOptions& options, Router* router, MetricsRegistry* registry)
      : metrics(registry),
        ioc(1),
        acceptor(ioc),
        pool(options.max_idle_upstream_per_backend,
             absl::ToChronoNanoseconds(options.upstream_idle_timeout)),
        sweep(ioc) {
    ctx.options = &options;
    ctx.router = router;
    ctx.metrics = &metrics;
    ctx.pool = &pool;
  }

  proxy::ProxyMetrics metrics;  // this thread's
  asio::io_context ioc;
  Acceptor acceptor;
  proxy::UpstreamPool pool;
  Timer sweep;
  proxy::WorkerContext ctx;
  tcp protocol = tcp::v4();  // the listener's
  bool stopping = false;
  std::thread thread;
};

struct HttpProxy::Impl {
  HttpProxyOptions options;
  Router* router = nullptr;
  std::deque<ProxyWorker> workers;
  uint16_t port = 0;
  bool stopped = false;
};

namespace {

// Asio 1.74 accepts without SOCK_CLOEXEC: wait for readability, then accept4 (skiffd forks
// shims, which must not inherit client connections).
Task<void> AcceptLoop(ProxyWorker& w) {
  constexpr int kAcceptsPerWakeup = 32;
  error_code ec;
  Timer backoff(w.ioc);
  while (!w.stopping) {
    co_await w.acceptor.async_wait(Acceptor::wait_read, Await(ec));
    if (w.stopping || !w.acceptor.is_open()) break;
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
      continue;
    }
    for (int i = 0; i < kAcceptsPerWakeup && !w.stopping; ++i) {
      const int c =
          ::accept4(w.acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of fds: let connections drain a little before trying again.
          backoff.expires_after(std::chrono::milliseconds(10));
          co_await backoff.async_wait(Await(ec));
        }
        break;  // EAGAIN (backlog empty), ECONNABORTED, EINTR...: the next wait tells
      }
      UniqueFd conn(c);
      Socket socket(w.ioc);
      socket.assign(w.protocol, conn.get(), ec);
      if (ec) continue;  // conn still owns (and closes) the fd
      conn.Release();    // owned by the socket now
      proxy::ClientSession::Launch(w.ioc, w.ctx, std::move(socket));
    }
  }
}

Task<void> SweepLoop(ProxyWorker& w) {
  error_code ec;
  while (!w.stopping) {
    w.sweep.expires_after(std::chrono::seconds(1));
    co_await w.sweep.async_wait(Await(ec));
    if (w.stopping) break;
    w.pool.Sweep();
  }
}

// The worker's event loop; with busy polling, BusyPollGovernor decides when it blocks.
void RunWorker(ProxyWorker& w, absl::Duration busy_poll) {
  if (busy_poll <= absl::ZeroDuration()) {
    w.ioc.run();
    return;
  }
  using Clock = proxy::BusyPollGovernor::Clock;
  proxy::BusyPollGovernor governor(absl::ToChronoNanoseconds(busy_poll), Clock::now());
  while (!w.ioc.stopped()) {
    if (w.ioc.poll() > 0) {
      governor.Handled(Clock::now());
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (governor.ShouldPoll(now)) {
      sched_yield();
      governor.Yielded(now, Clock::now());
      continue;
    }
    if (w.ioc.run_one() == 0) break;  // no work left: stopped
    governor.Handled(Clock::now());
  }
}

absl::Status Listen(ProxyWorker& w, const tcp::endpoint& endpoint, const std::string& listen) {
  // Opened here, not by Asio: Asio's open() does not set SOCK_CLOEXEC.
  UniqueFd fd(
      ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket(", listen, ")");
  error_code ec;
  w.protocol = endpoint.protocol();
  w.acceptor.assign(w.protocol, fd.get(), ec);
  if (ec) return absl::InternalError(absl::StrCat("socket(", listen, "): ", ec.message()));
  fd.Release();  // the acceptor owns it now
  w.acceptor.set_option(Acceptor::reuse_address(true), ec);
  if (!ec) w.acceptor.set_option(ReusePort(true), ec);
  if (ec) return absl::InternalError(absl::StrCat("socket(", listen, "): ", ec.message()));
  w.acceptor.bind(endpoint, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("bind(", listen, "): ", ec.message()));
  w.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("listen(", listen, "): ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpProxy>> HttpProxy::Start(HttpProxyOptions options,
                                                            Router* router,
                                                            MetricsRegistry* metrics) {
  if (router == nullptr) return absl::InvalidArgumentError("HttpProxy: router is null");
  if (options.threads < 1 || options.threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("ingress threads ", options.threads, ": want 1..256"));
  }
  if (options.max_header_bytes < 1024 || options.max_header_bytes > (1u << 24)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ingress max_header_bytes ", options.max_header_bytes, ": want 1 KiB..16 MiB"));
  }
  if (options.pin_header.empty()) {
    return absl::InvalidArgumentError("ingress pin_header: empty");
  }
  auto endpoint = ParseListen(options.listen);
  if (!endpoint.ok()) return endpoint.status();

  std::unique_ptr<HttpProxy> proxy(new HttpProxy());
  proxy->impl_ = std::make_unique<Impl>();
  Impl& impl = *proxy->impl_;
  impl.options = std::move(options);
  impl.router = router;
  tcp::endpoint bind_to = *endpoint;
  for (int i = 0; i < impl.options.threads; ++i) {
    ProxyWorker& w = impl.workers.emplace_back(impl.options, router, metrics);
    if (absl::Status s = Listen(w, bind_to, impl.options.listen); !s.ok()) return s;
    // Port 0: the first acceptor picks it, the others join it.
    bind_to.port(w.acceptor.local_endpoint().port());
  }
  impl.port = bind_to.port();
  for (ProxyWorker& w : impl.workers) {
    asio::co_spawn(w.ioc, AcceptLoop(w), asio::detached);
    asio::co_spawn(w.ioc, SweepLoop(w), asio::detached);
    w.thread = std::thread([&w, poll = impl.options.busy_poll] { RunWorker(w, poll); });
  }
  return proxy;
}

HttpProxy::~HttpProxy() { Stop(); }

uint16_t HttpProxy::port() const { return impl_->port; }

void HttpProxy::Stop() {
  if (impl_ == nullptr || impl_->stopped) return;
  impl_->stopped = true;
  for (ProxyWorker& w : impl_->workers) {
    asio::post(w.ioc, [&w] {
      w.stopping = true;
      error_code ignored;
      w.acceptor.close(ignored);
      w.sweep.cancel();
      std::vector<proxy::ClientSession*> sessions(w.ctx.sessions.begin(), w.ctx.sessions.end());
      for (proxy::ClientSession* s : sessions) s->Shutdown();
      w.pool.Clear();
    });
  }
  // Each thread's run() returns once its sessions have all ended.
  for (ProxyWorker& w : impl_->workers) {
    if (w.thread.joinable()) w.thread.join();
  }
}

}  // namespace skiff::ingress
