#include "agent/ingress/proxy_session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/ingress/proxy_h2c.h"
#include "agent/ingress/proxy_headers.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::ingress::proxy {

struct RelayResult {
  error_code ec;
  bool source_failed = false;  // the error came from reading `src` (else writing `dst`)
};
namespace {

constexpr size_t kBodyBufferBytes = 64 * 1024;
constexpr size_t kTunnelBufferBytes = 16 * 1024;
// How long a request body may still be pumped once a keep-alive upstream's response is
// complete (see Forward).
constexpr std::chrono::seconds kEarlyAnswerGrace{1};
// Not boost::none: Beast 1.74 compares `length > body_limit_` with the optional, and any
// length is greater than an empty optional (every body would be "too large").
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
// A request arriving on a connection quiet for this long (or a new one) gets its instance's
// CPU raised before it is parsed and routed (Router::Anticipate): that instance is likely
// idle and throttled. Back-to-back requests (a loaded connection) skip the lookup.
constexpr ClientSession::Clock::duration kAnticipateAfterQuiet = std::chrono::milliseconds(1);
// How far into a request's first bytes SniffHost looks.
constexpr size_t kSniffBytes = 8192;

// The Host header's value in the first bytes of a request, or empty when it is not there
// (yet). A sniff, not a parse: the request is parsed and validated afterwards as always.
std::string_view SniffHost(std::string_view raw) {
  raw = raw.substr(0, kSniffBytes);
  if (const size_t end = raw.find("\r\n\r\n"); end != std::string_view::npos) {
    raw = raw.substr(0, end + 2);
  }
  for (size_t nl = raw.find('\n'); nl != std::string_view::npos; nl = raw.find('\n', nl + 1)) {
    std::string_view line = raw.substr(nl + 1);
    if (line.size() < 5 || !beast::iequals(beast::string_view(line.data(), 5), "host:")) continue;
    const size_t eol = line.find('\r');
    if (eol == std::string_view::npos) return {};  // the line is not complete yet
    const absl::string_view value =
        absl::StripAsciiWhitespace(absl::string_view(line.data() + 5, eol - 5));
    return std::string_view(value.data(), value.size());
  }
  return {};
}

template <bool kIsRequest>
using Parser = http::parser<kIsRequest, http::buffer_body>;
template <bool kIsRequest>
using Serializer = http::serializer<kIsRequest, http::buffer_body>;

bool WouldBlock(const error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

// The sockets are in non-blocking mode, so these first try to finish synchronously: true
// when done (`ec` says how), false when the socket would block and the caller co_awaits the
// asynchronous operation instead. A small exchange then completes without a trip through
// the scheduler per operation (Asio posts every immediate completion, and each costs an
// epoll_wait). Plain functions, not coroutines: a coroutine's frame is an allocation per
// call, several per request.
template <class Parser>
bool TryReadHeader(Socket& s, beast::flat_buffer& b, Parser& p, error_code& ec) {
  ec = {};
  if (b.size() == 0) return false;  // nothing buffered: Asio's own speculative read does it
  http::read_header(s, b, p, ec);
  return !WouldBlock(ec);
}

template <class Serializer>
bool TryWriteHeader(Socket& s, Serializer& sr, error_code& ec) {
  ec = {};
  http::write_header(s, sr, ec);
  return !WouldBlock(ec);
}

template <class Serializer>
bool TryWrite(Socket& s, Serializer& sr, error_code& ec) {
  ec = {};
  http::write(s, sr, ec);
  return !WouldBlock(ec);
}

// Writes `data` (a flat head, or head and body); false with *written set when the socket
// would block: the caller co_awaits the rest (asio::buffer(data) + *written).
bool TryWriteFlat(Socket& s, const std::string& data, size_t* written, error_code& ec) {
  ec = {};
  *written = asio::write(s, asio::buffer(data), ec);
  return !WouldBlock(ec);
}

// Reads body bytes into p's buffer_body until some arrived, the body is full or the
// message is done: what arrives is forwarded at once (http::read would wait for a full
// buffer, holding back a stream's small pieces, and an echo's first bytes forever).
template <class Parser>
Task<void> ReadBody(Socket& s, beast::flat_buffer& b, Parser& p, error_code& ec, bool try_sync) {
  const size_t room = p.get().body().size;
  for (;;) {
    ec = {};
    bool done_sync = false;
    if (try_sync && b.size() > 0) {
      http::read_some(s, b, p, ec);
      done_sync = !WouldBlock(ec);
    }
    if (!done_sync) co_await http::async_read_some(s, b, p, Await(ec));
    if (ec == http::error::need_buffer) {  // the body buffer is full
      ec = {};
      co_return;
    }
    if (ec || p.is_done() || p.get().body().size < room) co_return;
    try_sync = true;  // only framing was parsed (a chunk header): more may be buffered
  }
}

// Asio's open() does not set SOCK_CLOEXEC, and skiffd forks shims that must not inherit
// connections: open the socket here and hand it to `s`.
error_code OpenCloexec(Socket& s, const tcp& protocol) {
  UniqueFd fd(::socket(protocol.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return error_code(errno, asio::error::get_system_category());
  error_code ec;
  s.assign(protocol, fd.get(), ec);
  if (!ec) fd.Release();  // the socket owns it now
  return ec;
}

// Streams the rest of the message parsed by `p` from `src` to `dst` through `buf`; `sr`
// serializes p's message (header first if not written yet). Sets *started before the
// first write to `dst`. Only the first round tries the synchronous path: a long body
// goes through the scheduler, so one connection cannot starve the others on its thread.
template <bool kIsRequest>
Task<RelayResult> Relay(Socket& src, beast::flat_buffer& src_buf, Parser<kIsRequest>& p,
                        Socket& dst, Serializer<kIsRequest>& sr, char* buf, bool* started) {
  error_code ec;
  // Beast reads at most the buffer's free capacity (512 bytes minimum): give a body room
  // for full-size reads, or a large body costs a syscall per 512 bytes.
  if (!p.is_done()) src_buf.reserve(kBodyBufferBytes);
  // A header with no body bytes behind it goes out alone at once: the body may be long in
  // coming (a stream's first event, an echo waiting for the request body).
  if (!sr.is_header_done() && !p.is_done() && src_buf.size() == 0) {
    if (started != nullptr) *started = true;
    if (!TryWriteHeader(dst, sr, ec)) co_await http::async_write_header(dst, sr, Await(ec));
    if (ec) co_return RelayResult{ec, false};
  }
  bool first = true;
  do {
    http::buffer_body::value_type& body = p.get().body();
    if (!p.is_done()) {
      body.data = buf;
      body.size = kBodyBufferBytes;
      co_await ReadBody(src, src_buf, p, ec, first);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return RelayResult{ec, true};
      body.size = kBodyBufferBytes - body.size;
      body.data = buf;
      body.more = !p.is_done();
      // Nothing more but the end (a last chunk): no data, or Beast's chunked serializer
      // would send an empty chunk, which is a last chunk too, before its own.
      if (body.size == 0 && !body.more) body.data = nullptr;
    } else {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
    }
    if (started != nullptr) *started = true;
    if (!(first && TryWrite(dst, sr, ec))) co_await http::async_write(dst, sr, Await(ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return RelayResult{ec, false};
    first = false;
  } while (!sr.is_done());
  co_return RelayResult{};
}

// A pooled connection the backend had already closed shows up as one of these before any
// response byte.
bool IsStaleConnectionError(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

// An interim response (1xx) other than 101, which ends the exchange instead.
bool IsInterim(const http::response_header<>& res) {
  return res.result_int() >= 100 && res.result_int() < 200 &&
         res.result() != http::status::switching_protocols;
}

bool IsParseError(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

struct ClientSession::Exchange {
  Exchange() { req.body_limit(kUnlimited); }
  Parser<true> req;
  std::optional<Serializer<true>> req_sr;  // req, forwarded (after req: destroyed first)
  std::optional<Parser<false>> res;
  Clock::time_point start;
  unsigned client_version = 11;
  bool client_keep_alive = true;
  bool head = false;
  bool upgrade = false;
  bool response_started = false;
  int status = 0;  // the status line sent to the client (0: none)
  std::optional<http::response<http::string_body>> error;  // an answer of the proxy's own
  std::string service;
  Lease lease;
};

struct ClientSession::ExchangeSlot {
  std::optional<Exchange> x;
};

// Starts a fresh Exchange in the slot; ends it (releasing its lease) however ServeOne exits.
class ClientSession::ExchangeScope {
 public:
  explicit ExchangeScope(ExchangeSlot& slot) : slot_(slot) { slot_.x.emplace(); }
  ~ExchangeScope() { slot_.x.reset(); }
  ExchangeScope(const ExchangeScope&) = delete;
  ExchangeScope& operator=(const ExchangeScope&) = delete;
  Exchange& get() { return *slot_.x; }

 private:
  ExchangeSlot& slot_;
};

ClientSession::ClientSession(WorkerContext& ctx, Socket client)
    : ctx_(ctx),
      client_(std::move(client)),
      body_buf_(new char[kBodyBufferBytes]),
      exchange_(std::make_unique<ExchangeSlot>()),
      timer_(client_.get_executor()) {
  ctx_.sessions.insert(this);
  error_code ec;
  client_.set_option(tcp::no_delay(true), ec);
  client_.non_blocking(true, ec);
  tcp::endpoint peer = client_.remote_endpoint(ec);
  if (!ec) client_ip_ = peer.address().to_string();
  ClearDeadline();
}

ClientSession::~ClientSession() { ctx_.sessions.erase(this); }

void ClientSession::Launch(asio::io_context& ioc, WorkerContext& ctx, Socket client) {
  auto session = std::make_shared<ClientSession>(ctx, std::move(client));
  asio::co_spawn(ioc, Watchdog(session), asio::detached);
  asio::co_spawn(ioc, RunSession(std::move(session)), asio::detached);
}

Task<void> ClientSession::RunSession(std::shared_ptr<ClientSession> self) { co_await self->Run(); }

void ClientSession::Shutdown() {
  closed_ = true;
  error_code ignored;
  client_.close(ignored);
  CloseUpstream();
  timer_.cancel();
  if (route_pending_ && route_ticket_ != 0) ctx_.router->Cancel(route_ticket_);
}

void ClientSession::CloseUpstream() {
  if (upstream_) {
    error_code ignored;
    upstream_->close(ignored);
  }
}

std::string_view ClientSession::ClientBytes() const {
  const auto data = client_buf_.data();
  return std::string_view(static_cast<const char*>(data.data()), data.size());
}

Task<void> ClientSession::ReadMoreFromClient(size_t room, error_code& ec) {
  const size_t got = co_await client_.async_read_some(client_buf_.prepare(room), Await(ec));
  if (!ec) client_buf_.commit(got);
}

Task<void> ClientSession::Run() {
  while (!closed_) {
    bool keep = co_await ServeOne();
    if (!keep) break;
    quiet_since_ = Clock::now();
  }
  if (linger_close_ && !closed_) co_await LingeringClose();
  closed_ = true;
  error_code ignored;
  client_.shutdown(Socket::shutdown_both, ignored);
  client_.close(ignored);
  CloseUpstream();
  upstream_.reset();
  timer_.cancel();
}

// The connection's one timer: sleeps until deadline_, re-arming when the deadline moved
// later (moving it earlier cancels the wait). So setting a deadline is a store, not a
// timer operation.
Task<void> ClientSession::Watchdog(std::shared_ptr<ClientSession> self) {
  error_code ec;
  while (!self->closed_) {
    self->timer_.expires_at(self->deadline_);
    co_await self->timer_.async_wait(Await(ec));
    if (self->closed_) break;
    if (Clock::now() >= self->deadline_) self->OnDeadline();
  }
}

void ClientSession::SetDeadline(Clock::time_point when, DeadlineKind kind) {
  deadline_ = when;
  deadline_kind_ = kind;
  // Only a deadline before the armed expiry needs the watchdog woken to re-arm; a later one
  // is found when the timer fires (a keep-alive request costs no timer operation).
  if (when < timer_.expiry()) timer_.cancel();
}

void ClientSession::OnDeadline() {
  const DeadlineKind kind = deadline_kind_;
  ClearDeadline();
  error_code ignored;
  switch (kind) {
    case DeadlineKind::kNone:
      break;
    case DeadlineKind::kClientIdle:
      client_.close(ignored);
      break;
    case DeadlineKind::kConnect:
      connect_timed_out_ = true;
      CloseUpstream();
      break;
    case DeadlineKind::kRequest:
      timed_out_ = true;
      CloseUpstream();
      client_.cancel(ignored);
      break;
  }
}

namespace {

// Where a route outcome goes: kept in `early` when the Router answers before the session
// waits for it (the common case: no asynchronous step at all), else handed to `deliver`.
struct RouteWait {
  absl::Mutex mu;
  std::optional<RouteOutcome> early ABSL_GUARDED_BY(mu);
  absl::AnyInvocable<void(RouteOutcome)> deliver ABSL_GUARDED_BY(mu);
};

}  // namespace

Task<RouteOutcome> ClientSession::RouteAsync(const RouteRequest& request) {
  auto wait = std::make_shared<RouteWait>();
  route_pending_ = true;
  route_ticket_ = ctx_.router->Route(request, [wait](RouteOutcome out) {
    absl::AnyInvocable<void(RouteOutcome)> deliver;
    {
      absl::MutexLock lock(&wait->mu);
      if (!wait->deliver) {
        wait->early = std::move(out);
        return;
      }
      deliver = std::move(wait->deliver);
    }
    deliver(std::move(out));
  });
  std::optional<RouteOutcome> early;
  {
    absl::MutexLock lock(&wait->mu);
    early.swap(wait->early);
  }
  if (early) {
    route_pending_ = false;
    route_ticket_ = 0;
    co_return std::move(*early);
  }

  // The request waits (queued, or a cold start).
  const uint64_t generation = ++route_generation_;
  if (closed_ && route_ticket_ != 0) {
    ctx_.router->Cancel(route_ticket_);
  } else if (route_ticket_ != 0) {
    // Watch the client meanwhile: a close cancels the wait.
    client_.async_wait(Socket::wait_read,
                       [self = shared_from_this(), generation](const error_code& ec) {
                         self->OnClientReadable(ec, generation);
                       });
  }
  auto executor = co_await asio::this_coro::executor;
  RouteOutcome outcome = co_await asio::async_initiate<decltype(kUseAwaitable), void(RouteOutcome)>(
      [&](auto handler) {
        absl::AnyInvocable<void(RouteOutcome)> deliver = [handler = std::move(handler),
                                                          executor](RouteOutcome out) mutable {
          asio::post(executor, [handler = std::move(handler), out = std::move(out)]() mutable {
            std::move(handler)(std::move(out));
          });
        };
        std::optional<RouteOutcome> arrived;
        {
          absl::MutexLock lock(&wait->mu);
          if (wait->early) {
            arrived.swap(wait->early);
          } else {
            wait->deliver = std::move(deliver);
          }
        }
        if (arrived) deliver(std::move(*arrived));
      },
      kUseAwaitable);
  route_pending_ = false;
  route_ticket_ = 0;
  ++route_generation_;  // a late close-watch completion is stale now
  error_code ignored;
  client_.cancel(ignored);  // the close watch, if it is still waiting
  co_return outcome;
}

void ClientSession::OnClientReadable(const error_code& ec, uint64_t generation) {
  if (generation != route_generation_ || !route_pending_ || ec == asio::error::operation_aborted)
    return;
  char c;
  ssize_t n = ec ? -1 : ::recv(client_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 || (n < 0 && !ec && (errno == EAGAIN || errno == EWOULDBLOCK))) return;
  client_gone_ = true;
  if (route_ticket_ != 0) ctx_.router->Cancel(route_ticket_);
}

void ClientSession::PrepareError(Exchange& x, int status, std::string_view message,
                                 std::optional<absl::Duration> retry_after, bool keep_alive) {
  http::response<http::string_body>& res =
      x.error.emplace(static_cast<http::status>(status), x.client_version == 10 ? 10u : 11u);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  if (retry_after) {
    const double secs = std::ceil(absl::ToDoubleSeconds(*retry_after));
    res.set(http::field::retry_after, std::to_string(static_cast<int64_t>(std::max(0.0, secs))));
  }
  res.body().assign(message.data(), message.size());
  if (res.body().empty() || res.body().back() != '\n') res.body() += '\n';
  res.keep_alive(keep_alive);
  res.prepare_payload();
  x.status = status;
}

Task<bool> ClientSession::WriteError(Exchange& x) {
  x.response_started = true;
  error_code ec;
  co_await http::async_write(client_, *x.error, Await(ec));
  // A close after an answer of ours may leave request bytes unread (a body, the rest of a
  // huge header): linger, or the close could be a RST that overtakes the answer.
  if (!x.error->keep_alive()) linger_close_ = true;
  co_return x.error->keep_alive() && !ec;
}

Task<bool> ClientSession::ServeOne() {
  const HttpProxyOptions& opts = *ctx_.options;
  ExchangeScope scope(*exchange_);
  Exchange& x = scope.get();
  x.req.header_limit(static_cast<uint32_t>(opts.max_header_bytes));
  SetDeadline(Clock::now() + absl::ToChronoNanoseconds(opts.client_idle_timeout),
              DeadlineKind::kClientIdle);
  error_code ec;
  if (first_request_) {
    // HTTP/2 with prior knowledge starts the connection with the preface, which Beast's
    // HTTP/1 parser rejects: look for it first.
    first_request_ = false;
    constexpr std::string_view kPri =
        kH2Preface.substr(0, kH2Preface.size() - kH2PrefaceTail.size());
    for (;;) {
      const std::string_view have = ClientBytes();
      const size_t n = std::min(have.size(), kPri.size());
      if (have.substr(0, n) != kPri.substr(0, n)) break;  // HTTP/1
      if (have.size() >= kPri.size()) {
        client_buf_.consume(kPri.size());
        x.start = Clock::now();
        co_return co_await ServeH2cPriorKnowledge(x);
      }
      co_await ReadMoreFromClient(4096, ec);
      if (ec) co_return false;
    }
  }
  // The request's first bytes are read before they are parsed, so that a request arriving
  // after a quiet spell can have its instance's CPU raised while the parsing and routing go
  // on (see kAnticipateAfterQuiet). The same read Beast would make; no extra system call.
  if (client_buf_.size() == 0) {
    co_await ReadMoreFromClient(std::max<size_t>(4096, client_buf_.capacity()), ec);
    if (ec) co_return false;  // closed, reset or timed out between requests: nothing to answer
  }
  CpuHold anticipated;
  if (Clock::now() - quiet_since_ >= kAnticipateAfterQuiet) {
    const std::string_view host = SniffHost(ClientBytes());
    if (!host.empty()) anticipated = ctx_.router->Anticipate(host);
  }
  if (!TryReadHeader(client_, client_buf_, x.req, ec)) {
    co_await http::async_read_header(client_, client_buf_, x.req, Await(ec));
  }
  x.start = Clock::now();
  ClearDeadline();
  if (ec) {
    if (closed_) co_return false;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      PrepareError(x, 431, "request header fields too large", std::nullopt, false);
      co_await WriteError(x);
      ctx_.metrics->Request("", 431, 0);
    } else if (ec == http::error::bad_version) {
      PrepareError(x, 505, "HTTP version not supported (HTTP/1.0, HTTP/1.1, h2c)", std::nullopt,
                   false);
      co_await WriteError(x);
      ctx_.metrics->Request("", 505, 0);
    } else if (IsParseError(ec)) {
      PrepareError(x, 400, absl::StrCat("bad request: ", ec.message()), std::nullopt, false);
      co_await WriteError(x);
      ctx_.metrics->Request("", 400, 0);
    }
    co_return false;
  }
  auto& req = x.req.get();
  x.client_version = req.version();
  x.client_keep_alive = req.keep_alive();
  x.head = req.method() == http::verb::head;
  x.upgrade = WantsUpgrade(req);
  auto host = req.find(http::field::host);
  if (host == req.end() && req.version() >= 11) {
    PrepareError(x, 400, "bad request: missing Host", std::nullopt, false);
    co_await WriteError(x);
    ctx_.metrics->Request("", 400, 0);
    co_return false;
  }

  RouteRequest route;
  if (host != req.end()) route.host.assign(host->value().data(), host->value().size());
  auto pin = req.find(beast::string_view(opts.pin_header));
  if (pin != req.end()) route.pin_instance.assign(pin->value().data(), pin->value().size());
  // The usual request is answered at once (TryRoute); one that has to wait goes through
  // RouteAsync.
  std::optional<RouteOutcome> routed = ctx_.router->TryRoute(route);
  if (!routed) routed = co_await RouteAsync(route);
  RouteOutcome& outcome = *routed;
  anticipated.Release();  // a granted lease keeps the CPU up from here
  x.service = std::move(outcome.service);
  if (closed_ || client_gone_) co_return false;
  if (!outcome.lease) {
    const int status = outcome.http_status != 0 ? outcome.http_status : 503;
    PrepareError(x, status, outcome.message, outcome.retry_after,
                 x.client_keep_alive && x.req.is_done());
    bool keep = co_await WriteError(x);
    ctx_.metrics->Request(x.service, status,
                          std::chrono::duration<double>(Clock::now() - x.start).count());
    co_return keep;
  }
  x.lease = std::move(outcome.lease);
  bool keep = co_await Forward(x);
  x.lease.Release();
  if (x.status != 0) {
    ctx_.metrics->Request(x.service, x.status,
                          std::chrono::duration<double>(Clock::now() - x.start).count());
  }
  co_return keep && !closed_;
}

struct ClientSession::BodyPump {
  explicit BodyPump(const Executor& executor) : signal(executor, Clock::time_point::max()) {}
  bool done = false;
  RelayResult result;
  Timer signal;  // cancelled when the pump ends
};

void ClientSession::StartPump(Exchange& x) {
  if (!pump_buf_) pump_buf_.reset(new char[kBodyBufferBytes]);
  auto pump = std::make_shared<BodyPump>(client_.get_executor());
  pump_ = pump;
  asio::co_spawn(
      client_.get_executor(),
      Relay<true>(client_, client_buf_, x.req, *upstream_, *x.req_sr, pump_buf_.get(), nullptr),
      [self = shared_from_this(), pump](std::exception_ptr e, RelayResult r) {
        if (e) r = RelayResult{asio::error::fault, true};  // (bad_alloc): give up
        pump->done = true;
        pump->result = r;
        // A client that vanished or sent a broken body: the upstream got a
        // truncated request, so the exchange is over (the response side sees
        // its connection closed).
        if (r.ec && r.source_failed) self->CloseUpstream();
        pump->signal.cancel();
      });
}

Task<bool> ClientSession::JoinPump(Clock::duration grace) {
  std::shared_ptr<BodyPump> pump = pump_;
  if (!pump) co_return true;
  error_code ec;
  if (!pump->done && grace > Clock::duration::zero()) {
    pump->signal.expires_after(grace);
    co_await pump->signal.async_wait(Await(ec));
  }
  if (!pump->done) {
    CloseUpstream();  // cancels a write to the upstream
    error_code ignored;
    client_.cancel(ignored);  // and a read from the client
    pump->signal.expires_at(Clock::time_point::max());
    while (!pump->done) co_await pump->signal.async_wait(Await(ec));
  }
  pump_.reset();
  co_return !pump->result.ec;
}

bool ClientSession::PumpFailedOnClient() const {
  return pump_ && pump_->done && pump_->result.ec && pump_->result.source_failed;
}

Task<void> ClientSession::DropUpstream() {
  CloseUpstream();
  co_await JoinPump(Clock::duration::zero());
  upstream_.reset();
}

Task<void> ClientSession::LingeringClose() {
  constexpr uint64_t kMaxLingerBytes = 64ull << 20;
  error_code ec;
  client_.shutdown(Socket::shutdown_send, ec);
  if (ec) co_return;
  // The watchdog closes the client when the second is over.
  SetDeadline(Clock::now() + std::chrono::seconds(1), DeadlineKind::kClientIdle);
  client_buf_.clear();
  for (uint64_t total = 0; total < kMaxLingerBytes && !closed_;) {
    const size_t n = co_await client_.async_read_some(
        asio::buffer(body_buf_.get(), kBodyBufferBytes), Await(ec));
    if (ec) break;
    total += n;
  }
  ClearDeadline();
}

Task<void> ClientSession::ReadResponseHeader(Exchange& x, error_code& ec) {
  x.res.emplace();
  x.res->header_limit(static_cast<uint32_t>(ctx_.options->max_header_bytes));
  x.res->body_limit(kUnlimited);
  if (x.head) x.res->skip(true);
  if (!TryReadHeader(*upstream_, upstream_buf_, *x.res, ec)) {
    co_await http::async_read_header(*upstream_, upstream_buf_, *x.res, Await(ec));
  }
}

// Rare paths of Forward, coroutines of their own: what they keep across a suspension (a
// serializer, an interim response) would otherwise sit in Forward's frame on every request,
// pushing it past the allocator's fast sizes.
Task<void> ClientSession::RelayInterim(Exchange& x, error_code& ec) {
  while (IsInterim(x.res->get())) {
    http::response<http::empty_body> interim{x.res->get().result(), 11};
    for (const auto& f : x.res->get()) {
      interim.insert(f.name_string(), f.value());
    }
    StripHopByHop(interim, false);
    co_await http::async_write(client_, interim, Await(ec));
    if (ec) co_return;
    co_await ReadResponseHeader(x, ec);
    if (ec) co_return;
  }
}

Task<RelayResult> ClientSession::RelayResponse(Exchange& x) {
  Serializer<false> rsr{x.res->get()};
  RelayResult got = co_await Relay<false>(*upstream_, upstream_buf_, *x.res, client_, rsr,
                                          body_buf_.get(), &x.response_started);
  co_return got;
}

Task<bool> ClientSession::Forward(Exchange& x) {
  const HttpProxyOptions& opts = *ctx_.options;
  const BackendInfo& backend = x.lease.backend();
  auto& req = x.req.get();
  const bool expect_continue = beast::iequals(req[http::field::expect], "100-continue");
  StripHopByHop(req, x.upgrade);
  SetForwardedHeaders(req, client_ip_);
  // Re-framed by us: chunked stays chunked, a length is sent as one plain number (the
  // parser accepted "5, 5"); never both (the parser refuses that combination anyway).
  if (x.req.chunked()) {
    req.chunked(true);
  } else if (auto length = x.req.content_length()) {
    req.content_length(*length);
  }
  req.version(11);

  const Clock::time_point request_deadline =
      x.start + absl::ToChronoNanoseconds(backend.request_timeout);
  timed_out_ = false;
  connect_timed_out_ = false;
  error_code ec;
  // The pool key and address of the backend, kept while the connection's requests go to the
  // same one (the usual case: no string built, no address parsed per request).
  if (backend.ip != backend_ip_ || backend.port != backend_port_) {
    backend_ip_ = backend.ip;
    backend_port_ = backend.port;
    backend_key_ = absl::StrCat(backend.ip, ":", backend.port);
    backend_endpoint_ = tcp::endpoint(asio::ip::make_address(backend.ip, ec), backend.port);
    if (ec) backend_ip_.clear();  // not kept: the error is answered below, every time
  }
  const std::string& key = backend_key_;
  const tcp::endpoint& endpoint = backend_endpoint_;
  if (ec) {
    PrepareError(x, 502, absl::StrCat("bad backend address ", backend.ip), std::nullopt, false);
    co_return co_await WriteError(x);
  }

  bool client_body_unread = false;
  size_t written = 0;  // by a flat write that would have blocked (the rest is awaited)
  // How sending the request ended, then how relaying the response did (one variable: the
  // frame of this coroutine, allocated per request, stays within the allocator's fast sizes).
  RelayResult sent;
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    upstream_buf_.clear();
    // A bodyless request is resent if the connection turns out stale (below).
    if (std::optional<Socket> idle = ctx_.pool->Take(key, x.req.is_done())) {
      upstream_.emplace(std::move(*idle));
      reused = true;
      SetDeadline(request_deadline, DeadlineKind::kRequest);
    } else {
      upstream_.emplace(client_.get_executor());
      SetDeadline(std::min(request_deadline,
                           Clock::now() + absl::ToChronoNanoseconds(opts.upstream_connect_timeout)),
                  DeadlineKind::kConnect);
      ec = OpenCloexec(*upstream_, endpoint.protocol());
      if (!ec) co_await upstream_->async_connect(endpoint, Await(ec));
      if (closed_) co_return false;
      if (ec) {
        ClearDeadline();
        const bool request_timeout = Clock::now() >= request_deadline;
        ctx_.metrics->UpstreamError(x.service, request_timeout ? "timeout" : "connect");
        upstream_.reset();
        if (request_timeout) {
          PrepareError(x, 504, "upstream request timed out", std::nullopt, false);
          co_return co_await WriteError(x);
        }
        PrepareError(x, 502,
                     absl::StrCat("upstream connect to ", key,
                                  " failed: ", connect_timed_out_ ? "timed out" : ec.message()),
                     std::nullopt, x.client_keep_alive && x.req.is_done());
        co_return co_await WriteError(x);
      }
      upstream_->set_option(tcp::no_delay(true), ec);
      upstream_->non_blocking(true, ec);
      SetDeadline(request_deadline, DeadlineKind::kRequest);
    }

    // The request header; a body is pumped by a coroutine of its own (StartPump) while the
    // response is read, unless the client waits for 100 Continue first.
    const bool has_body = !x.req.is_done();
    sent = RelayResult{};
    if (!has_body) {
      // The request is its header: formatted flat and sent at once, without the serializer
      // or a relay.
      FormatRequestHead(req, &head_buf_);
      if (!TryWriteFlat(*upstream_, head_buf_, &written, ec)) {
        co_await asio::async_write(*upstream_, asio::buffer(head_buf_) + written, Await(ec));
      }
      sent.ec = ec;
    } else {
      x.req_sr.emplace(req);
      if (!TryWriteHeader(*upstream_, *x.req_sr, ec)) {
        co_await http::async_write_header(*upstream_, *x.req_sr, Await(ec));
      }
      sent.ec = ec;
      if (!ec && !expect_continue) StartPump(x);
    }
    if (!sent.ec) {
      co_await ReadResponseHeader(x, ec);
      sent.ec = ec;
      sent.source_failed = false;
      if (!ec && expect_continue && has_body) {
        if (x.res->get().result() == http::status::continue_) {
          static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(client_, asio::buffer(kContinue, sizeof(kContinue) - 1),
                                     Await(ec));
          if (!ec) {
            StartPump(x);
            co_await ReadResponseHeader(x, ec);
            sent.ec = ec;
          } else {
            sent = RelayResult{ec, true};
          }
        } else {
          client_body_unread = true;  // a final answer instead of 100: the body stays unsent
        }
      }
    }
    if (closed_) {
      co_await DropUpstream();
      co_return false;
    }
    if (sent.ec) {
      const bool client_failed = sent.source_failed || PumpFailedOnClient();
      co_await DropUpstream();
      if (timed_out_) {
        ctx_.metrics->UpstreamError(x.service, "timeout");
        if (x.response_started) co_return false;
        PrepareError(x, 504, "upstream request timed out", std::nullopt, false);
        co_return co_await WriteError(x);
      }
      if (client_failed) co_return false;  // the client went away or sent a bad body
      if (reused && attempt == 0 && !has_body && IsStaleConnectionError(sent.ec)) {
        continue;  // a keep-alive connection the backend closed while idle: once more, fresh
      }
      ctx_.metrics->UpstreamError(x.service, "reset");
      if (x.response_started) co_return false;
      PrepareError(x, 502,
                   absl::StrCat("upstream ", key, " failed before a response: ", sent.ec.message()),
                   std::nullopt, false);
      co_return co_await WriteError(x);
    }
    break;
  }

  if (IsInterim(x.res->get())) {
    co_await RelayInterim(x, ec);
    if (ec) {
      if (timed_out_) ctx_.metrics->UpstreamError(x.service, "timeout");
      co_await DropUpstream();
      co_return false;
    }
  }

  auto& res = x.res->get();
  const int status = res.result_int();
  const bool switching = status == 101;
  if (switching && !x.upgrade) {
    ctx_.metrics->UpstreamError(x.service, "reset");
    co_await DropUpstream();
    PrepareError(x, 502, "upstream switched protocols unasked", std::nullopt, false);
    co_return co_await WriteError(x);
  }
  const bool upstream_keeps = !switching && res.keep_alive() && !x.res->need_eof();
  bool keep = x.client_keep_alive && !client_body_unread && !switching;
  // An upstream that answers before the request body ended and then closes: the rest of
  // the body will not be read, so the client connection closes after the response.
  if (!x.req.is_done() && !upstream_keeps) keep = false;
  const bool has_body = !(x.head || status == 204 || status == 304 || switching);
  const bool length_known = x.res->content_length().has_value();
  StripHopByHop(res, switching);
  if (has_body && length_known) res.content_length(*x.res->content_length());
  if (has_body && !length_known) {
    if (x.client_version >= 11) {
      res.chunked(true);
    } else {
      keep = false;  // an HTTP/1.0 client: the body ends when the connection does
    }
  }
  res.version(x.client_version == 10 ? 10 : 11);
  if (!switching) res.keep_alive(keep);
  x.status = status;

  RelayResult& got = sent;
  const uint64_t length = length_known ? *x.res->content_length() : 0;
  if (has_body && length_known && length <= kBodyBufferBytes && length <= upstream_buf_.size()) {
    // The whole body arrived with the header (the usual small answer): the header formatted
    // flat and the body after it, one write, no serializer and no relay. What follows the
    // body in the buffer (bytes the backend sent unasked) keeps the connection out of the
    // pool, as below.
    FormatResponseHead(res, &head_buf_);
    head_buf_.append(static_cast<const char*>(upstream_buf_.data().data()), length);
    upstream_buf_.consume(length);
    x.response_started = true;
    if (!TryWriteFlat(client_, head_buf_, &written, ec)) {
      co_await asio::async_write(client_, asio::buffer(head_buf_) + written, Await(ec));
    }
    got.ec = ec;
  } else {
    got = co_await RelayResponse(x);
  }
  if (got.ec) {
    const bool client_failed = PumpFailedOnClient();
    if (timed_out_)
      ctx_.metrics->UpstreamError(x.service, "timeout");
    else if (got.source_failed && !client_failed)
      ctx_.metrics->UpstreamError(x.service, "reset");
    co_await DropUpstream();
    if (!x.response_started && !closed_ && !client_failed) {
      if (timed_out_) {
        PrepareError(x, 504, "upstream request timed out", std::nullopt, false);
        co_return co_await WriteError(x);
      }
      PrepareError(x, 502, "upstream failed mid-response", std::nullopt, false);
      co_return co_await WriteError(x);
    }
    co_return false;
  }
  // The response is complete. A body still being pumped gets a moment to finish (its last
  // write may have completed already, its coroutine not resumed yet); an upstream that
  // closes gets none: the body is cut and the client connection closed.
  bool body_ok = true;
  if (pump_)
    body_ok = co_await JoinPump(upstream_keeps ? kEarlyAnswerGrace : Clock::duration::zero());
  ClearDeadline();
  const bool body_complete = body_ok && x.req.is_done() && !client_body_unread;
  if (!body_complete) {
    keep = false;
    linger_close_ = true;
  }
  if (switching) {
    if (body_complete) co_await Tunnel();
    co_await DropUpstream();
    co_return false;
  }
  if (upstream_keeps && body_complete && upstream_buf_.size() == 0 && !closed_) {
    ctx_.pool->Put(key, std::move(*upstream_));
  } else {
    CloseUpstream();
  }
  upstream_.reset();
  co_return keep;
}

// HTTP/2 with prior knowledge: route by the first request's :authority, then splice the
// connection to the instance (see proxy_h2c.h). Errors can't be answered in HTTP/1: the
// connection is closed.
Task<bool> ClientSession::ServeH2cPriorKnowledge(Exchange& x) {
  const HttpProxyOptions& opts = *ctx_.options;
  constexpr size_t kMaxPeekBytes = 128 * 1024;
  SetDeadline(Clock::now() + absl::ToChronoNanoseconds(opts.client_idle_timeout),
              DeadlineKind::kClientIdle);
  error_code ec;
  H2cFirstRequest first;
  for (;;) {
    first = PeekH2cFirstRequest(ClientBytes(), opts.pin_header);
    if (first.state != H2cFirstRequest::State::kNeedMore) break;
    if (client_buf_.size() >= kMaxPeekBytes) {
      first.state = H2cFirstRequest::State::kError;
      break;
    }
    co_await ReadMoreFromClient(16 * 1024, ec);
    if (ec) co_return false;
  }
  ClearDeadline();
  if (first.state == H2cFirstRequest::State::kError) {
    ctx_.metrics->Request("", 400, 0);
    co_return false;
  }
  RouteRequest route;
  route.host = std::move(first.authority);
  route.pin_instance = std::move(first.pin);
  std::optional<RouteOutcome> routed = ctx_.router->TryRoute(route);
  if (!routed) routed = co_await RouteAsync(route);
  RouteOutcome& outcome = *routed;
  x.service = std::move(outcome.service);
  if (closed_ || client_gone_) co_return false;
  if (!outcome.lease) {
    ctx_.metrics->Request(x.service, outcome.http_status != 0 ? outcome.http_status : 503,
                          std::chrono::duration<double>(Clock::now() - x.start).count());
    co_return false;
  }
  x.lease = std::move(outcome.lease);
  const BackendInfo& backend = x.lease.backend();
  tcp::endpoint endpoint(asio::ip::make_address(backend.ip, ec), backend.port);
  if (ec) co_return false;
  upstream_.emplace(client_.get_executor());
  upstream_buf_.clear();
  SetDeadline(Clock::now() + absl::ToChronoNanoseconds(opts.upstream_connect_timeout),
              DeadlineKind::kConnect);
  ec = OpenCloexec(*upstream_, endpoint.protocol());
  if (!ec) co_await upstream_->async_connect(endpoint, Await(ec));
  ClearDeadline();
  if (closed_) co_return false;
  if (ec) {
    ctx_.metrics->UpstreamError(x.service, "connect");
    CloseUpstream();
    upstream_.reset();
    co_return false;
  }
  upstream_->set_option(tcp::no_delay(true), ec);
  // The preface's first line was consumed by the HTTP/1 parser; the rest is in client_buf_,
  // which Tunnel sends first.
  constexpr std::string_view kHead =
      kH2Preface.substr(0, kH2Preface.size() - kH2PrefaceTail.size());
  co_await asio::async_write(*upstream_, asio::buffer(kHead.data(), kHead.size()), Await(ec));
  if (!ec && !closed_) co_await Tunnel();
  CloseUpstream();
  upstream_.reset();
  co_return false;
}

// After a 101: bytes flow both ways untouched until either side closes; then both close.
Task<void> ClientSession::Tunnel() {
  error_code ec;
  // Bytes that arrived behind the handshakes go first.
  if (client_buf_.size() > 0) {
    co_await asio::async_write(*upstream_, client_buf_.data(), Await(ec));
    client_buf_.consume(client_buf_.size());
  }
  if (!ec && upstream_buf_.size() > 0) {
    co_await asio::async_write(client_, upstream_buf_.data(), Await(ec));
    upstream_buf_.consume(upstream_buf_.size());
  }
  if (ec || closed_) co_return;

  auto pump = [](Socket& from, Socket& to, char* buf) -> Task<void> {
    error_code ec;
    for (;;) {
      size_t n = co_await from.async_read_some(asio::buffer(buf, kTunnelBufferBytes), Await(ec));
      if (ec) break;
      co_await asio::async_write(to, asio::buffer(buf, n), Await(ec));
      if (ec) break;
    }
    error_code ignored;
    from.close(ignored);
    to.close(ignored);
  };
  std::vector<char> down(kTunnelBufferBytes);
  bool down_done = false;
  Timer down_signal(client_.get_executor(), Clock::time_point::max());
  asio::co_spawn(client_.get_executor(), pump(*upstream_, client_, down.data()),
                 [&down_done, &down_signal](std::exception_ptr) {
                   down_done = true;
                   down_signal.cancel();
                 });
  co_await pump(client_, *upstream_, body_buf_.get());
  while (!down_done) co_await down_signal.async_wait(Await(ec));
}

}  // namespace skiff::ingress::proxy
