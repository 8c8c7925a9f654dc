#pragma once

// The proxy's metric families. Compiled against skiff_ingress_metrics when that target
// exists (SKIFF_PROXY_HAVE_METRICS); otherwise every call is a no-op. A null registry
// also makes every call a no-op.
//
// Threads: one ProxyMetrics per proxy thread, used only there. It keeps the series it has
// used bound (a registry's series live as long as the registry), so a request's counts cost
// a hash lookup on this thread, not a lookup under the family's lock.

#include <string>

#include "absl/container/flat_hash_map.h"
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
#ifdef SKIFF_PROXY_HAVE_METRICS
  // One service's bound series (looked up by the service's name without copying it).
  struct ServiceSeries {
    Histogram duration;
    absl::flat_hash_map<int, Counter> requests;  // by status code
  };
  absl::flat_hash_map<std::string, ServiceSeries> series_;
#endif
};

}  // namespace skiff::ingress::proxy
