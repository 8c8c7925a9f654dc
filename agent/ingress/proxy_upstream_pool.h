#pragma once

// Idle keep-alive connections to backends, one pool per proxy thread (so no locks): per
// backend ("ip:port") a LIFO list, bounded, each entry dropped once idle past the idle
// timeout. A connection is checked (non-blocking MSG_PEEK) when taken: one the backend closed
// or wrote to while idle is discarded. Except one idle for less than kUncheckedReuse taken for
// a request the proxy can resend (no body): there a close shows up at the first read and the
// request is retried once on a fresh connection (see ClientSession::Forward), and a server
// that writes unasked (a 408 before closing) does so after its own idle timeout, not within a
// second. That saves a syscall per request on a busy keep-alive connection.
//
// Threads: used only on its io_context's thread.

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "agent/ingress/proxy_asio.h"

namespace skiff::ingress::proxy {

class UpstreamPool {
 public:
  using Clock = std::chrono::steady_clock;

  UpstreamPool(size_t max_idle_per_backend, Clock::duration idle_timeout)
      : max_idle_(max_idle_per_backend), idle_timeout_(idle_timeout) {}

  static constexpr Clock::duration kUncheckedReuse = std::chrono::seconds(1);

  // The most recently used live idle connection to `backend`, or nullopt. `resendable`: the
  // caller can resend the request on a fresh connection if this one turns out closed.
  std::optional<Socket> Take(const std::string& backend, bool resendable);
  // Keeps `socket` for reuse (closing the oldest idle one beyond the bound).
  void Put(const std::string& backend, Socket socket);
  // Closes connections idle past the timeout.
  void Sweep();
  // Closes everything.
  void Clear();
  size_t idle_count() const;

 private:
  struct Idle {
    Socket socket;
    Clock::time_point since;
  };
  const size_t max_idle_;
  const Clock::duration idle_timeout_;
  absl::flat_hash_map<std::string, std::deque<Idle>> idle_;
};

}  // namespace skiff::ingress::proxy
