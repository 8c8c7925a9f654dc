#pragma once

// skiffd's admin HTTP endpoint (default 127.0.0.1:9090): GET /metrics answers the
// registry's Prometheus text exposition (Content-Type: text/plain; version=0.0.4),
// GET /healthz answers "ok". Anything else: 404; other methods: 405. HTTP/1.1 keep-alive.
// One thread; scrapes are rare.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/ingress/metrics.h"

namespace skiff::ingress {

class AdminServer {
 public:
  // `listen` is host:port (port 0 = pick one). Borrows `metrics`.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& listen,
                                                            const MetricsRegistry* metrics);
  ~AdminServer();  // Stop()
  uint16_t port() const;
  void Stop();  // idempotent

 private:
  AdminServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::ingress
