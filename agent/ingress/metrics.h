#pragma once

// Prometheus metrics for skiffd: counter and histogram families with labels, updated from
// any thread, plus collectors that report point-in-time values (gauges) at scrape time.
// Render() produces the Prometheus text exposition format 0.0.4 (# HELP, # TYPE, samples;
// label values escaped: backslash, double quote, newline; histograms as cumulative
// _bucket{le="..."} series ending with le="+Inf", then _sum and _count).
//
// Order of the exposition (pinned by the tests): the counter and histogram families in the
// order they were added, then the collectors' families in the order they were first
// started. Within a registered family, series are sorted by their label values; collectors'
// samples keep the order they were written in. A family a collector starts again (e.g. one
// collector per instance writing the same family) continues the first group, so each family
// is one group of lines. A family without labels always has its one series (0 until first
// set); a labelled family shows only the label sets that were set (or bound) at least once.
// Label values that are not valid UTF-8 have each bad byte replaced by U+FFFD (Prometheus
// would otherwise reject the whole scrape).
//
// Threads: families are thread-safe; a family's Inc/Observe on an existing label set takes
// a shared lock only (the per-series value is atomic). Collectors run on the scraping
// thread under the registry's render lock, so a collector must not call back into the
// registry.
//
// Programming errors crash with a message on stderr (they are broken invariants in our own
// code, never input): a bad metric or label name, a wrong number of label values, a
// negative or NaN counter increment, a family re-added with other labels or another type; in
// a collector: a bad name, a family that is also a registered family or changes its type, a
// repeated label, Sample() before Family().

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace skiff::ingress {

class MetricsRegistry;

namespace metrics_internal {

// Hash and equality over a label-value list, usable with a vector (the stored key) or a span
// (the lookup key), so a lookup builds no vector.
struct LabelValuesHash {
  using is_transparent = void;
  size_t operator()(absl::Span<const std::string> v) const;
};
struct LabelValuesEq {
  using is_transparent = void;
  bool operator()(absl::Span<const std::string> a, absl::Span<const std::string> b) const;
};

// A family's identity and its label-set → series map.
template <typename Series>
class SeriesMap {
 public:
  // `n_buckets`: what a new HistogramSeries is built with (unused for counters).
  explicit SeriesMap(size_t n_buckets = 0) : n_buckets_(n_buckets) {}
  // Returns the series for `label_values`, creating it on first use. Shared lock on a hit.
  Series* GetOrCreate(absl::Span<const std::string> label_values);
  const Series* Find(absl::Span<const std::string> label_values) const;
  // Snapshot of (label values, series), sorted by label values.
  std::vector<std::pair<std::vector<std::string>, const Series*>> Sorted() const;

 private:
  const size_t n_buckets_;
  // std::shared_mutex, not absl::Mutex: its shared lock+unlock costs 13 ns here against
  // absl's 40+ ns, and this is the per-request path.
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<std::vector<std::string>, std::unique_ptr<Series>, LabelValuesHash,
                      LabelValuesEq>
      series_;  // guarded by mu_
};

struct CounterSeries {
  std::atomic<double> value{0};
};

struct HistogramSeries {
  explicit HistogramSeries(size_t n_buckets) : buckets(n_buckets) {}
  // Non-cumulative: buckets[i] counts observations in (bound[i-1], bound[i]]; the last one
  // is (bound[n-1], +Inf]. Rendered cumulatively; _count is their sum, so it always
  // equals the +Inf bucket even while observations race a scrape.
  std::vector<std::atomic<uint64_t>> buckets;
  std::atomic<double> sum{0};
};

}  // namespace metrics_internal

// One series of a counter family, bound once (WithLabels) so that Inc takes no lock and does
// no lookup: one atomic add. Copyable; valid as long as its registry.
class Counter {
 public:
  void Inc(double v = 1);  // v >= 0
  double Value() const;

 private:
  friend class CounterFamily;
  Counter(const std::string* family_name, metrics_internal::CounterSeries* series)
      : family_name_(family_name), series_(series) {}
  const std::string* family_name_;
  metrics_internal::CounterSeries* series_;
};

class HistogramFamily;

// One series of a histogram family, bound once (WithLabels): Observe is a binary search over
// the bounds and two atomic adds. Copyable; valid as long as its registry.
class Histogram {
 public:
  void Observe(double v);
  uint64_t Count() const;
  double Sum() const;

 private:
  friend class HistogramFamily;
  Histogram(const HistogramFamily* family, metrics_internal::HistogramSeries* series)
      : family_(family), series_(series) {}
  const HistogramFamily* family_;
  metrics_internal::HistogramSeries* series_;
};

class CounterFamily {
 public:
  // `label_values` must have as many entries as the family's label names (crash otherwise:
  // a broken invariant in our own code). `v` must be >= 0.
  void Inc(absl::Span<const std::string> label_values, double v = 1);
  double Value(absl::Span<const std::string> label_values) const;  // 0 if never set
  // The series for `label_values` (created now, so it shows in Render() from now on, at 0).
  Counter WithLabels(absl::Span<const std::string> label_values);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class MetricsRegistry;
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  void CheckArity(absl::Span<const std::string> label_values) const;
  void Render(std::string& out) const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  metrics_internal::SeriesMap<metrics_internal::CounterSeries> series_;
};

class HistogramFamily {
 public:
  void Observe(absl::Span<const std::string> label_values, double v);
  uint64_t Count(absl::Span<const std::string> label_values) const;  // 0 if never set
  double Sum(absl::Span<const std::string> label_values) const;      // 0 if never set
  // The series for `label_values` (created now, so it shows in Render() from now on).
  Histogram WithLabels(absl::Span<const std::string> label_values);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  friend class MetricsRegistry;
  friend class Histogram;
  size_t BucketIndex(double v) const;
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> upper_bounds);
  void CheckArity(absl::Span<const std::string> label_values) const;
  void Render(std::string& out) const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> upper_bounds_;
  std::vector<std::string> le_texts_;  // upper_bounds_ formatted once, then "+Inf"
  metrics_internal::SeriesMap<metrics_internal::HistogramSeries> series_;
};

// What a collector writes: one family at a time.
class GaugeWriter {
 public:
  // Starts a family: "# HELP" and "# TYPE name gauge" (or "counter" for counters whose
  // value lives elsewhere, e.g. CpuThrottle's transition counts). Starting a family that
  // this or an earlier collector already started (same type) continues it: its samples are
  // rendered with the earlier ones, under the first HELP text.
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
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*, not
  // starting with "__" ("le" is reserved in histograms). Adding the same name twice returns
  // the first family (its labels, and a histogram's bounds, must match).
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

  // Text helpers of the exposition format (exposed for tests and the collectors' writer).
  static std::string EscapeLabelValue(const std::string& v);  // \\ \" \n
  static std::string FormatValue(double v);  // integers exactly, +Inf, -Inf, NaN, shortest

 private:
  struct Entry {
    std::unique_ptr<CounterFamily> counter;  // exactly one of the two is set
    std::unique_ptr<HistogramFamily> histogram;
  };

  mutable absl::Mutex mu_;  // guards the family list and the collectors, not the values
  std::vector<Entry> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(GaugeWriter&)>> collectors_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex render_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one Render() at a time
};

}  // namespace skiff::ingress
