#pragma once

// The ingress's HTTP/1.1 reverse proxy (Boost.Beast on Boost.Asio; see docs/ingress.md for
// why). Clients connect to `listen`; each request's Host picks a service through the
// Router, which hands back a Lease on one instance; the request is forwarded to
// <ip>:<port> over a pooled keep-alive upstream connection and the response streamed back.
//
// - Keep-alive on both sides; bodies of any size streamed in both directions (fixed length
//   or chunked; memory per request bounded by a few buffers, never the body).
// - Hop-by-hop headers (Connection and the headers it names, Keep-Alive, TE, Trailer,
//   Transfer-Encoding, Upgrade, Proxy-Connection, Proxy-Authenticate,
//   Proxy-Authorization) are dropped per RFC 9110 §7.6.1; X-Forwarded-For (appended),
//   X-Forwarded-Proto, X-Forwarded-Host set; the pin header is passed through.
// - `Upgrade` (WebSocket): forwarded; on 101 the two connections are spliced byte for
//   byte until either side closes; the lease is held meanwhile.
// - The backend's request_timeout bounds the whole exchange: past it the client gets 504
//   (if no response byte was sent yet; else the connection is closed) and the upstream
//   connection is closed (cancelling the upstream request).
// - Upstream connect failure or an upstream that closes before a response → 502; a
//   pooled connection found dead before any response byte is retried once on a fresh one
//   when the request had no body.
// - Errors from routing (404/429/503 with Retry-After) are answered in plain text with
//   Connection kept alive (closed instead when the request had a body, which is not read).
// - Full duplex: the request body is streamed upstream while the response is read and
//   streamed back (an upstream may echo as it reads). An upstream that answers before the
//   body ended: if it keeps the connection, the body gets 1 s more to finish; if it closes,
//   the body is cut at once; either way an unfinished body closes the client connection
//   after the response (lingering: we stop sending and drop what arrives, up to 1 s) and
//   the upstream connection is not reused. `Expect: 100-continue` is forwarded and the
//   upstream's 100 relayed before the body moves. Other 1xx responses are relayed too.
// - Every socket is close-on-exec (listener, accepted and upstream connections): skiffd
//   forks shims.
// - h2c: `Upgrade: h2c` is forwarded like any upgrade (HTTP2-Settings kept) and spliced
//   after 101. HTTP/2 with prior knowledge (gRPC's way; the connection starts with the
//   "PRI * HTTP/2.0" preface) is routed by its first request's :authority (HPACK-decoded
//   with nghttp2) and then spliced whole to that instance: one lease for the connection,
//   all its streams to one instance. Routing errors there just close the connection.
//   Other HTTP versions → 505.
//
// Threads: `threads` threads, each with its own io_context and SO_REUSEPORT acceptor on the
// one port (the kernel spreads connections); a connection stays on its thread. Upstream
// pools are per thread (max_idle_upstream_per_backend applies per thread). Start returns
// once listening. Stop waits for every connection to end; a request waiting in the Router
// is cancelled (Router::Cancel) and Stop waits for its `done`.
// Caveat of SO_REUSEPORT: a second process of the same user may bind the same port with
// SO_REUSEPORT too and share the traffic silently.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/ingress/metrics.h"
#include "agent/ingress/router.h"

namespace skiff::ingress {

struct HttpProxyOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 = pick one (see port())
  int threads = 2;
  std::string pin_header = "X-Skiff-Instance";
  size_t max_header_bytes = 64 * 1024;  // request or response header block; beyond → 431/502
  absl::Duration client_idle_timeout = absl::Seconds(120);  // keep-alive idle client conn
  absl::Duration upstream_connect_timeout = absl::Seconds(5);
  size_t max_idle_upstream_per_backend = 64;
  absl::Duration upstream_idle_timeout = absl::Seconds(60);
  // After handling events a thread keeps polling this long before it sleeps (0: never
  // polls). See docs/ingress.md for what it buys and what it costs.
  absl::Duration busy_poll = absl::ZeroDuration();
};

class HttpProxy {
 public:
  // Borrows router and metrics (metrics may be null); both must outlive the proxy.
  // Registers its families in `metrics`:
  //   skiff_ingress_requests_total{service,code}            counter
  //   skiff_ingress_request_duration_seconds{service}       histogram (arrival → last byte)
  //   skiff_ingress_upstream_errors_total{service,kind}     counter (connect, reset, timeout)
  static absl::StatusOr<std::unique_ptr<HttpProxy>> Start(HttpProxyOptions options, Router* router,
                                                          MetricsRegistry* metrics);
  ~HttpProxy();  // Stop()

  uint16_t port() const;
  // Stops accepting, closes every connection, joins the threads. Idempotent.
  void Stop();

 private:
  HttpProxy() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::ingress
