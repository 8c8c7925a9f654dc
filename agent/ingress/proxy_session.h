#pragma once

// One client connection of the reverse proxy: reads requests one after another
// (keep-alive), routes each through the Router, forwards it over a pooled upstream
// connection, streams the response back, and splices a WebSocket (101) tunnel.
// Full duplex: a request body is pumped upstream by a coroutine of its own while the
// response is read and relayed, so an upstream may answer (and stream its answer) before
// the body ends.
//
// Threads: a session lives on one proxy thread (its worker's io_context); every member is
// touched only there. The Router's `done` may run anywhere: it is posted back.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "agent/ingress/http_proxy.h"
#include "agent/ingress/proxy_asio.h"
#include "agent/ingress/proxy_metrics.h"
#include "agent/ingress/proxy_upstream_pool.h"
#include "agent/ingress/router.h"

namespace skiff::ingress::proxy {

class ClientSession;
struct RelayResult;  // how relaying a message ended

// What the sessions of one proxy thread share. Used only on that thread (metrics and
// router are thread-safe themselves).
struct WorkerContext {
  const HttpProxyOptions* options = nullptr;
  Router* router = nullptr;
  ProxyMetrics* metrics = nullptr;
  UpstreamPool* pool = nullptr;
  absl::flat_hash_set<ClientSession*> sessions;
};

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  using Clock = std::chrono::steady_clock;

  ClientSession(WorkerContext& ctx, Socket client);
  ~ClientSession();

  // Spawns the session's coroutines on `ioc`; it ends when the client connection does.
  static void Launch(asio::io_context& ioc, WorkerContext& ctx, Socket client);

  // Closes both connections and cancels a pending route (proxy shutdown).
  void Shutdown();

 private:
  enum class DeadlineKind { kNone, kClientIdle, kConnect, kRequest };
  struct Exchange;
  // Holds the current request's Exchange: one allocation per connection, not per request
  // (in ServeOne's coroutine frame it would push the frame past the allocator's fast sizes).
  struct ExchangeSlot;
  class ExchangeScope;
  struct BodyPump;

  static Task<void> RunSession(std::shared_ptr<ClientSession> self);
  Task<void> Run();
  // What the client sent that is not consumed yet.
  std::string_view ClientBytes() const;
  // One read of up to `room` more bytes from the client into client_buf_.
  Task<void> ReadMoreFromClient(size_t room, error_code& ec);
  static Task<void> Watchdog(std::shared_ptr<ClientSession> self);
  // Serves one request; returns whether the client connection stays open.
  Task<bool> ServeOne();
  Task<RouteOutcome> RouteAsync(const RouteRequest& request);  // `request` outlives it
  void OnClientReadable(const error_code& ec, uint64_t generation);
  Task<bool> Forward(Exchange& x);
  // A fresh response parser in x.res (header limit, unlimited body, HEAD's empty body), then
  // the upstream's next response header into it (a final one, or another 1xx).
  Task<void> ReadResponseHeader(Exchange& x, error_code& ec);
  // Relays x.res while it is an interim response (1xx but 101), reading the next header
  // into it each time.
  Task<void> RelayInterim(Exchange& x, error_code& ec);
  // Relays the response in x.res (header and body) through a serializer.
  Task<RelayResult> RelayResponse(Exchange& x);
  Task<bool> ServeH2cPriorKnowledge(Exchange& x);
  Task<void> Tunnel();
  // Starts pumping x's request body (header already sent) from the client to the upstream.
  void StartPump(Exchange& x);
  // Waits for the body pump (if any) up to `grace`, then stops it (closing the upstream);
  // returns whether it relayed the whole body.
  Task<bool> JoinPump(Clock::duration grace);
  // Whether the body pump ended because reading the client failed.
  bool PumpFailedOnClient() const;
  // Closes the upstream connection, stops the body pump, forgets the socket.
  Task<void> DropUpstream();
  // Before closing a client whose request body was not read to its end: stop sending, read
  // and drop what still arrives (bounded), so the close is not a RST ahead of the answer.
  Task<void> LingeringClose();
  // An answer of the proxy's own (routing errors, 400/431/502/504) into x.error; then
  // WriteError sends it. (Two steps: no temporaries inside co_await expressions, which
  // g++ 12 can destroy twice.)
  static void PrepareError(Exchange& x, int status, std::string_view message,
                           std::optional<absl::Duration> retry_after, bool keep_alive);
  Task<bool> WriteError(Exchange& x);

  void SetDeadline(Clock::time_point when, DeadlineKind kind);
  void ClearDeadline() {
    SetDeadline(Clock::now() + std::chrono::hours(24 * 365), DeadlineKind::kNone);
  }
  void OnDeadline();
  void CloseUpstream();

  WorkerContext& ctx_;
  Socket client_;
  std::string client_ip_;
  beast::flat_buffer client_buf_;
  std::optional<Socket> upstream_;
  beast::flat_buffer upstream_buf_;
  // The last backend this connection forwarded to: its address and upstream-pool key.
  std::string backend_ip_;
  uint16_t backend_port_ = 0;
  std::string backend_key_;  // "ip:port"
  tcp::endpoint backend_endpoint_;
  std::unique_ptr<char[]> body_buf_;        // one per connection: bodies stream through it
  std::string head_buf_;                    // a bodyless request's header, formatted for one write
  std::unique_ptr<char[]> pump_buf_;        // the request body's own, allocated on first use
  std::shared_ptr<BodyPump> pump_;          // the running request-body pump, if any
  std::unique_ptr<ExchangeSlot> exchange_;  // ServeOne's current exchange
  bool linger_close_ = false;               // the client's request body was left unread

  Timer timer_;
  Clock::time_point deadline_;
  DeadlineKind deadline_kind_ = DeadlineKind::kNone;
  bool closed_ = false;
  bool first_request_ = true;
  // When the last exchange ended (the epoch before the first): see kAnticipateAfterQuiet.
  Clock::time_point quiet_since_{};
  bool timed_out_ = false;          // request_timeout fired during this exchange
  bool connect_timed_out_ = false;  // upstream_connect_timeout fired

  bool route_pending_ = false;
  bool client_gone_ = false;
  uint64_t route_ticket_ = 0;
  uint64_t route_generation_ = 0;
};

}  // namespace skiff::ingress::proxy
