#include "agent/ingress/proxy_metrics.h"

#include <string>

namespace skiff::ingress::proxy {

#ifdef SKIFF_PROXY_HAVE_METRICS

ProxyMetrics::ProxyMetrics(MetricsRegistry* registry) {
  if (registry == nullptr) return;
  requests_ = registry->AddCounter("skiff_ingress_requests_total",
                                   "HTTP requests answered by the ingress, by service and status "
                                   "code.",
                                   {"service", "code"});
  duration_ = registry->AddHistogram(
      "skiff_ingress_request_duration_seconds",
      "Ingress request duration, from arrival to the last byte of the response.", {"service"},
      MetricsRegistry::LatencyBuckets());
  upstream_errors_ =
      registry->AddCounter("skiff_ingress_upstream_errors_total",
                           "Upstream failures seen by the ingress proxy (connect, reset, timeout).",
                           {"service", "kind"});
}

void ProxyMetrics::Request(const std::string& service, int code, double seconds) {
  if (requests_ == nullptr) return;
  auto it = series_.find(service);
  if (it == series_.end()) {
    it = series_.emplace(service, ServiceSeries{duration_->WithLabels({&service, 1}), {}}).first;
  }
  ServiceSeries& s = it->second;
  auto counter = s.requests.find(code);
  if (counter == s.requests.end()) {
    const std::string labels[2] = {service, std::to_string(code)};
    counter = s.requests.emplace(code, requests_->WithLabels(labels)).first;
  }
  counter->second.Inc();
  s.duration.Observe(seconds);
}

void ProxyMetrics::UpstreamError(const std::string& service, const char* kind) {
  if (upstream_errors_ == nullptr) return;
  const std::string labels[2] = {service, kind};
  upstream_errors_->Inc(labels);
}

#else  // skiff_ingress_metrics not built yet: metrics are off.

ProxyMetrics::ProxyMetrics(MetricsRegistry*) {}
void ProxyMetrics::Request(const std::string&, int, double) {}
void ProxyMetrics::UpstreamError(const std::string&, const char*) {}

#endif

}  // namespace skiff::ingress::proxy
