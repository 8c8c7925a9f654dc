#pragma once

// Prometheus metrics for skiffd: counter and histogram families with labels, updated from
// any thread, plus collectors that report point-in-time values (gauges) at scrape time.
// Render() produces the Prometheus text exposition format 0.0.4 (# HELP, # TYPE, samples;
// label values escaped: backslash, double quote, newline; histograms as cumulative
// _bucket{le="..."} series ending with le="+Inf", then _sum and _count).
//
// Threads: families are thread-safe; a family's Inc/Observe on an existing label set takes
// a shared lock only (the per-series value is atomic). Collectors run on the scraping
// thread under the registry's render lock, so a collector must not call back into the
// registry.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace skiff::ingress {

class CounterFamily {
 public:
  // `label_values` must have as many entries as the family's label names (crash otherwise:
  // a broken invariant in our own code).
  void Inc(absl::Span<const std::string> label_values, double v = 1);
  double Value(absl::Span<const std::string> label_values) const;  // 0 if never set
  // ... implementation-defined ...
};

class HistogramFamily {
 public:
  void Observe(absl::Span<const std::string> label_values, double v);
  uint64_t Count(absl::Span<const std::string> label_values) const;
  // ... implementation-defined ...
};

// What a collector writes: one family at a time.
class GaugeWriter {
 public:
  // Starts a family: "# HELP" and "# TYPE name gauge" (or "counter" for counters whose
  // value lives elsewhere, e.g. CpuThrottle's transition counts).
  virtual void Family(const std::string& name, const std::string& help,
                      const std::string& type = "gauge") = 0;
  // One sample of the current family.
  virtual void Sample(const std::vector<std::pair<std::string, std::string>>& labels,
                      double value) = 0;
  virtual ~GaugeWriter() = default;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*. Adding
  // the same name twice returns the first family (its labels must match).
  CounterFamily* AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names);
  HistogramFamily* AddHistogram(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names,
                                std::vector<double> upper_bounds);  // sorted, without +Inf
  // Runs at every Render(), in the order added.
  void AddCollector(std::function<void(GaugeWriter&)> collector);

  std::string Render() const;

  // Latency buckets in seconds, 100 µs .. 60 s.
  static std::vector<double> LatencyBuckets();

 private:
  // ... implementation-defined ...
};

}  // namespace skiff::ingress
