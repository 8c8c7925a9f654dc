#pragma once

// The proxy's metric families. Compiled against skiff_ingress_metrics when that target
// exists (SKIFF_PROXY_HAVE_METRICS); otherwise every call is a no-op. A null registry
// also makes every call a no-op.

#include <string>

#include "agent/ingress/metrics.h"

namespace skiff::ingress::proxy {

class ProxyMetrics {
 public:
  explicit ProxyMetrics(MetricsRegistry* registry);

  // One finished request: its status code and arrival → last byte.
  void Request(const std::string& service, int code, double seconds);
  // kind: "connect", "reset", "timeout".
  void UpstreamError(const std::string& service, const char* kind);

 private:
  CounterFamily* requests_ = nullptr;
  HistogramFamily* duration_ = nullptr;
  CounterFamily* upstream_errors_ = nullptr;
};

}  // namespace skiff::ingress::proxy
