#include "agent/ingress/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <type_traits>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace skiff::ingress {
namespace {

// A broken invariant in our own code: say what and stop.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "skiff metrics: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  if (s.empty() || s.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

void CheckNames(const std::string& name, const std::vector<std::string>& label_names,
                bool histogram) {
  if (!IsMetricName(name)) {
    Die(absl::StrCat("invalid metric name \"", name, "\" (want [a-zA-Z_:][a-zA-Z0-9_:]*)"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!IsLabelName(l)) {
      Die(absl::StrCat("metric ", name, ": invalid label name \"", l,
                       "\" (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
    }
    if (histogram && l == "le") Die(absl::StrCat("metric ", name, ": label \"le\" is reserved"));
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == l) Die(absl::StrCat("metric ", name, ": duplicate label \"", l, "\""));
    }
  }
}

// Length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0 when it is
// invalid (stray continuation byte, overlong form, surrogate, beyond U+10FFFF, truncated).
size_t Utf8SequenceLength(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  }
  return n;
}

// "# HELP" text escapes backslash and newline only.
std::string EscapeHelp(const std::string& h) {
  std::string out;
  out.reserve(h.size());
  for (char c : h) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  const std::string& type) {
  absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type, "\n");
}

// name{a="x",b="y"[,le="..."]} value\n
void AppendSample(std::string& out, const std::string& name,
                  const std::vector<std::string>& label_names,
                  absl::Span<const std::string> label_values, const std::string* le, double value) {
  out += name;
  if (!label_names.empty() || le != nullptr) {
    out += '{';
    for (size_t i = 0; i < label_names.size(); ++i) {
      if (i > 0) out += ',';
      absl::StrAppend(&out, label_names[i], "=\"",
                      MetricsRegistry::EscapeLabelValue(label_values[i]), "\"");
    }
    if (le != nullptr) {
      if (!label_names.empty()) out += ',';
      absl::StrAppend(&out, "le=\"", *le, "\"");
    }
    out += '}';
  }
  absl::StrAppend(&out, " ", MetricsRegistry::FormatValue(value), "\n");
}

// Writes collectors' families into the exposition, checking their shape.
// Collects the collectors' families. A family started again (same name and type, e.g. by
// one collector per instance) continues the first one, so each family stays one group in the
// exposition; groups come out in the order of their first Family() call.
class TextGaugeWriter : public GaugeWriter {
 public:
  // `registered`: every metric name the registered families already expose (a counter's name,
  // a histogram's name and its _bucket/_sum/_count).
  explicit TextGaugeWriter(absl::flat_hash_set<std::string> registered)
      : registered_(std::move(registered)) {}

  void Family(const std::string& name, const std::string& help, const std::string& type) override {
    if (!IsMetricName(name)) {
      Die(absl::StrCat("collector: invalid metric name \"", name, "\""));
    }
    if (type != "gauge" && type != "counter" && type != "untyped") {
      Die(absl::StrCat("collector: metric ", name, ": unsupported type \"", type, "\""));
    }
    if (registered_.contains(name)) {
      Die(absl::StrCat("collector: metric ", name, " is already a registered family"));
    }
    auto [it, inserted] = index_.try_emplace(name, groups_.size());
    if (inserted) {
      groups_.push_back(Group{.name = name, .type = type, .text = ""});
      AppendHeader(groups_.back().text, name, help, type);
    } else if (groups_[it->second].type != type) {
      Die(absl::StrCat("collector: metric ", name, " started as ", type, ", earlier as ",
                       groups_[it->second].type));
    }
    current_ = &groups_[it->second];
  }

  void Sample(const std::vector<std::pair<std::string, std::string>>& labels,
              double value) override {
    if (current_ == nullptr) Die("collector: Sample() before Family()");
    std::string& out = current_->text;
    const std::string& name = current_->name;
    out += name;
    if (!labels.empty()) {
      out += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (!IsLabelName(labels[i].first)) {
          Die(absl::StrCat("collector: metric ", name, ": invalid label name \"", labels[i].first,
                           "\""));
        }
        for (size_t j = 0; j < i; ++j) {
          if (labels[j].first == labels[i].first) {
            Die(absl::StrCat("collector: metric ", name, ": duplicate label \"", labels[i].first,
                             "\""));
          }
        }
        if (i > 0) out += ',';
        absl::StrAppend(&out, labels[i].first, "=\"",
                        MetricsRegistry::EscapeLabelValue(labels[i].second), "\"");
      }
      out += '}';
    }
    absl::StrAppend(&out, " ", MetricsRegistry::FormatValue(value), "\n");
  }

  void AppendTo(std::string& out) const {
    for (const Group& g : groups_) out += g.text;
  }

 private:
  struct Group {
    std::string name;
    std::string type;
    std::string text;
  };
  absl::flat_hash_set<std::string> registered_;
  std::deque<Group> groups_;  // a deque: current_ stays valid as groups are added
  absl::flat_hash_map<std::string, size_t> index_;
  Group* current_ = nullptr;
};

// Adds `v` to an atomic double (C++20 fetch_add on floating atomics).
void AtomicAdd(std::atomic<double>& a, double v) { a.fetch_add(v, std::memory_order_relaxed); }

}  // namespace

namespace metrics_internal {

size_t LabelValuesHash::operator()(absl::Span<const std::string> v) const {
  return absl::Hash<absl::Span<const std::string>>{}(v);
}

bool LabelValuesEq::operator()(absl::Span<const std::string> a,
                               absl::Span<const std::string> b) const {
  return a == b;
}

template <typename Series>
Series* SeriesMap<Series>::GetOrCreate(absl::Span<const std::string> label_values) {
  {
    std::shared_lock l(mu_);
    auto it = series_.find(label_values);
    if (it != series_.end()) return it->second.get();
  }
  std::unique_lock l(mu_);
  auto [it, inserted] =
      series_.try_emplace(std::vector<std::string>(label_values.begin(), label_values.end()));
  if (inserted) {
    if constexpr (std::is_same_v<Series, HistogramSeries>) {
      it->second = std::make_unique<Series>(n_buckets_);
    } else {
      it->second = std::make_unique<Series>();
    }
  }
  return it->second.get();
}

template <typename Series>
const Series* SeriesMap<Series>::Find(absl::Span<const std::string> label_values) const {
  std::shared_lock l(mu_);
  auto it = series_.find(label_values);
  return it == series_.end() ? nullptr : it->second.get();
}

template <typename Series>
std::vector<std::pair<std::vector<std::string>, const Series*>> SeriesMap<Series>::Sorted() const {
  std::vector<std::pair<std::vector<std::string>, const Series*>> out;
  {
    std::shared_lock l(mu_);
    out.reserve(series_.size());
    for (const auto& [k, v] : series_) out.emplace_back(k, v.get());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

template class SeriesMap<CounterSeries>;
template class SeriesMap<HistogramSeries>;

}  // namespace metrics_internal

// ---- CounterFamily ----

CounterFamily::CounterFamily(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  if (label_names_.empty()) series_.GetOrCreate({});
}

void CounterFamily::CheckArity(absl::Span<const std::string> label_values) const {
  if (label_values.size() != label_names_.size()) {
    Die(absl::StrCat("metric ", name_, ": ", label_values.size(), " label values for ",
                     label_names_.size(), " labels (", absl::StrJoin(label_names_, ","), ")"));
  }
}

void CounterFamily::Inc(absl::Span<const std::string> label_values, double v) {
  CheckArity(label_values);
  if (!(v >= 0)) Die(absl::StrCat("metric ", name_, ": counter increment ", v, " (must be >= 0)"));
  auto* s = series_.GetOrCreate(label_values);
  AtomicAdd(s->value, v);
}

Counter CounterFamily::WithLabels(absl::Span<const std::string> label_values) {
  CheckArity(label_values);
  return Counter(&name_, series_.GetOrCreate(label_values));
}

void Counter::Inc(double v) {
  if (!(v >= 0)) {
    Die(absl::StrCat("metric ", *family_name_, ": counter increment ", v, " (must be >= 0)"));
  }
  AtomicAdd(series_->value, v);
}

double Counter::Value() const { return series_->value.load(std::memory_order_relaxed); }

double CounterFamily::Value(absl::Span<const std::string> label_values) const {
  CheckArity(label_values);
  const auto* s = series_.Find(label_values);
  return s == nullptr ? 0 : s->value.load(std::memory_order_relaxed);
}

void CounterFamily::Render(std::string& out) const {
  AppendHeader(out, name_, help_, "counter");
  for (const auto& [labels, s] : series_.Sorted()) {
    AppendSample(out, name_, label_names_, labels, nullptr,
                 s->value.load(std::memory_order_relaxed));
  }
}

// ---- HistogramFamily ----

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names,
                                 std::vector<double> upper_bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)),
      series_(upper_bounds_.size() + 1) {
  for (double b : upper_bounds_) le_texts_.push_back(MetricsRegistry::FormatValue(b));
  le_texts_.push_back("+Inf");
  if (label_names_.empty()) series_.GetOrCreate({});
}

void HistogramFamily::CheckArity(absl::Span<const std::string> label_values) const {
  if (label_values.size() != label_names_.size()) {
    Die(absl::StrCat("metric ", name_, ": ", label_values.size(), " label values for ",
                     label_names_.size(), " labels (", absl::StrJoin(label_names_, ","), ")"));
  }
}

void HistogramFamily::Observe(absl::Span<const std::string> label_values, double v) {
  CheckArity(label_values);
  auto* s = series_.GetOrCreate(label_values);
  s->buckets[BucketIndex(v)].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(s->sum, v);
}

size_t HistogramFamily::BucketIndex(double v) const {
  // First bound >= v ("le" is inclusive); NaN lands in +Inf.
  if (std::isnan(v)) return upper_bounds_.size();
  return static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), v) -
                             upper_bounds_.begin());
}

Histogram HistogramFamily::WithLabels(absl::Span<const std::string> label_values) {
  CheckArity(label_values);
  return Histogram(this, series_.GetOrCreate(label_values));
}

void Histogram::Observe(double v) {
  series_->buckets[family_->BucketIndex(v)].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(series_->sum, v);
}

uint64_t Histogram::Count() const {
  uint64_t n = 0;
  for (const auto& b : series_->buckets) n += b.load(std::memory_order_relaxed);
  return n;
}

double Histogram::Sum() const { return series_->sum.load(std::memory_order_relaxed); }

uint64_t HistogramFamily::Count(absl::Span<const std::string> label_values) const {
  CheckArity(label_values);
  const auto* s = series_.Find(label_values);
  if (s == nullptr) return 0;
  uint64_t n = 0;
  for (const auto& b : s->buckets) n += b.load(std::memory_order_relaxed);
  return n;
}

double HistogramFamily::Sum(absl::Span<const std::string> label_values) const {
  CheckArity(label_values);
  const auto* s = series_.Find(label_values);
  return s == nullptr ? 0 : s->sum.load(std::memory_order_relaxed);
}

void HistogramFamily::Render(std::string& out) const {
  AppendHeader(out, name_, help_, "histogram");
  const std::string bucket_name = name_ + "_bucket";
  const std::string sum_name = name_ + "_sum";
  const std::string count_name = name_ + "_count";
  for (const auto& [labels, s] : series_.Sorted()) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < s->buckets.size(); ++i) {
      cumulative += s->buckets[i].load(std::memory_order_relaxed);
      AppendSample(out, bucket_name, label_names_, labels, &le_texts_[i],
                   static_cast<double>(cumulative));
    }
    AppendSample(out, sum_name, label_names_, labels, nullptr,
                 s->sum.load(std::memory_order_relaxed));
    AppendSample(out, count_name, label_names_, labels, nullptr, static_cast<double>(cumulative));
  }
}

// ---- MetricsRegistry ----

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

CounterFamily* MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                           std::vector<std::string> label_names) {
  CheckNames(name, label_names, /*histogram=*/false);
  absl::MutexLock l(&mu_);
  for (const Entry& e : families_) {
    if (e.counter != nullptr && e.counter->name() == name) {
      if (e.counter->label_names() != label_names) {
        Die(absl::StrCat("metric ", name, " re-added with labels (",
                         absl::StrJoin(label_names, ","), "), first added with (",
                         absl::StrJoin(e.counter->label_names(), ","), ")"));
      }
      return e.counter.get();
    }
    if (e.histogram != nullptr && e.histogram->name() == name) {
      Die(absl::StrCat("metric ", name, " added as a counter, already a histogram"));
    }
  }
  families_.push_back(
      Entry{.counter = std::unique_ptr<CounterFamily>(new CounterFamily(name, help, label_names)),
            .histogram = nullptr});
  return families_.back().counter.get();
}

HistogramFamily* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> upper_bounds) {
  CheckNames(name, label_names, /*histogram=*/true);
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && upper_bounds[i] <= upper_bounds[i - 1])) {
      Die(absl::StrCat("metric ", name,
                       ": histogram bounds must be finite and strictly increasing (bound ", i,
                       " = ", upper_bounds[i], ")"));
    }
  }
  absl::MutexLock l(&mu_);
  for (const Entry& e : families_) {
    if (e.histogram != nullptr && e.histogram->name() == name) {
      if (e.histogram->label_names() != label_names ||
          e.histogram->upper_bounds() != upper_bounds) {
        Die(absl::StrCat("metric ", name, " re-added with other labels or bounds"));
      }
      return e.histogram.get();
    }
    if (e.counter != nullptr && e.counter->name() == name) {
      Die(absl::StrCat("metric ", name, " added as a histogram, already a counter"));
    }
  }
  families_.push_back(Entry{.counter = nullptr,
                            .histogram = std::unique_ptr<HistogramFamily>(new HistogramFamily(
                                name, help, std::move(label_names), std::move(upper_bounds)))});
  return families_.back().histogram.get();
}

void MetricsRegistry::AddCollector(std::function<void(GaugeWriter&)> collector) {
  absl::MutexLock l(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() const {
  absl::MutexLock render_lock(&render_mu_);
  // Families are never removed and their addresses are stable: snapshot the lists, then
  // render without holding mu_ (so Inc/Observe/Add* never wait for a scrape).
  std::vector<const CounterFamily*> counters;
  std::vector<const HistogramFamily*> histograms;
  std::vector<std::function<void(GaugeWriter&)>> collectors;
  std::vector<bool> is_counter;
  {
    absl::MutexLock l(&mu_);
    for (const Entry& e : families_) {
      is_counter.push_back(e.counter != nullptr);
      if (e.counter != nullptr) {
        counters.push_back(e.counter.get());
      } else {
        histograms.push_back(e.histogram.get());
      }
    }
    collectors = collectors_;
  }
  std::string out;
  absl::flat_hash_set<std::string> names;
  size_t ci = 0;
  size_t hi = 0;
  for (bool c : is_counter) {
    if (c) {
      names.insert(counters[ci]->name());
      counters[ci++]->Render(out);
    } else {
      const std::string& n = histograms[hi]->name();
      names.insert({n, n + "_bucket", n + "_sum", n + "_count"});
      histograms[hi++]->Render(out);
    }
  }
  TextGaugeWriter writer(std::move(names));
  for (const auto& collect : collectors) collect(writer);
  writer.AppendTo(out);
  return out;
}

std::vector<double> MetricsRegistry::LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

std::string MetricsRegistry::EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size();) {
    const char c = v[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x80) {
      out += c;
    } else {
      // Prometheus rejects a whole scrape over one invalid UTF-8 label value: replace each
      // byte of an invalid sequence with U+FFFD.
      const size_t n = Utf8SequenceLength(v, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
        continue;
      }
      out.append(v, i, n);
      i += n;
      continue;
    }
    ++i;
  }
  return out;
}

std::string MetricsRegistry::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values below 2^53 exactly as integers (counters read "1000000", not "1e+06").
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  // Otherwise the shortest text that reads back as the same double, %g style like
  // Prometheus' own clients ("0.0001", "2.5e-07").
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

}  // namespace skiff::ingress
