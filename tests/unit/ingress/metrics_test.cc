#include "agent/ingress/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace skiff::ingress {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CounterExpositionIsExact) {
  MetricsRegistry r;
  CounterFamily* c = r.AddCounter("skiff_ingress_requests_total", "Requests by service and code.",
                                  {"service", "code"});
  c->Inc({"hello", "200"});
  c->Inc({"hello", "200"}, 2);
  c->Inc({"echo", "503"});
  c->Inc({"hello", "404"}, 0.5);
  EXPECT_EQ(r.Render(),
            "# HELP skiff_ingress_requests_total Requests by service and code.\n"
            "# TYPE skiff_ingress_requests_total counter\n"
            "skiff_ingress_requests_total{service=\"echo\",code=\"503\"} 1\n"
            "skiff_ingress_requests_total{service=\"hello\",code=\"200\"} 3\n"
            "skiff_ingress_requests_total{service=\"hello\",code=\"404\"} 0.5\n");
  EXPECT_EQ(c->Value({"hello", "200"}), 3);
  EXPECT_EQ(c->Value({"hello", "500"}), 0);
}

TEST(MetricsTest, UnlabelledCounterShowsZeroBeforeFirstInc) {
  MetricsRegistry r;
  CounterFamily* c = r.AddCounter("skiff_x_total", "X.", {});
  EXPECT_EQ(r.Render(), "# HELP skiff_x_total X.\n# TYPE skiff_x_total counter\nskiff_x_total 0\n");
  c->Inc({}, 1000000);
  EXPECT_THAT(r.Render(), HasSubstr("\nskiff_x_total 1000000\n"));
}

TEST(MetricsTest, LabelledFamilyWithoutSeriesHasOnlyHeader) {
  MetricsRegistry r;
  r.AddCounter("a_total", "A.", {"k"});
  EXPECT_EQ(r.Render(), "# HELP a_total A.\n# TYPE a_total counter\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry r;
  CounterFamily* c = r.AddCounter("esc_total", "Line one\nback\\slash \"quoted\".", {"v"});
  c->Inc({std::string("a\\b\"c\nd")});
  EXPECT_EQ(r.Render(),
            "# HELP esc_total Line one\\nback\\\\slash \"quoted\".\n"
            "# TYPE esc_total counter\n"
            "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsTest, InvalidUtf8InLabelValuesIsReplaced) {
  // One bad value must not make Prometheus reject the whole scrape.
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // valid 2-, 3-, 4-byte forms kept
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("a\xFFz"), "a" + fffd + "z");
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("\x80"), fffd);             // stray continuation
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("\xC0\xAF"), fffd + fffd);  // overlong '/'
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogate
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("\xF4\x90\x80\x80"),
            fffd + fffd + fffd + fffd);                                          // > U+10FFFF
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("x\xE2\x82"), "x" + fffd + fffd);  // truncated
  EXPECT_EQ(MetricsRegistry::EscapeLabelValue("\xE2\x82\"q"), fffd + fffd + "\\\"q");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry r;
  HistogramFamily* h =
      r.AddHistogram("lat_seconds", "Latency.", {"service"}, {0.001, 0.25, 1, 2.5});
  h->Observe({"s"}, 0.0005);  // bucket 0.001
  h->Observe({"s"}, 0.001);   // le is inclusive: bucket 0.001
  h->Observe({"s"}, 0.2);     // 0.25
  h->Observe({"s"}, 2);       // 2.5
  h->Observe({"s"}, 100);     // +Inf
  EXPECT_EQ(r.Render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{service=\"s\",le=\"0.001\"} 2\n"
            "lat_seconds_bucket{service=\"s\",le=\"0.25\"} 3\n"
            "lat_seconds_bucket{service=\"s\",le=\"1\"} 3\n"
            "lat_seconds_bucket{service=\"s\",le=\"2.5\"} 4\n"
            "lat_seconds_bucket{service=\"s\",le=\"+Inf\"} 5\n"
            "lat_seconds_sum{service=\"s\"} 102.2015\n"
            "lat_seconds_count{service=\"s\"} 5\n");
  EXPECT_EQ(h->Count({"s"}), 5u);
  EXPECT_DOUBLE_EQ(h->Sum({"s"}), 102.2015);
  EXPECT_EQ(h->Count({"other"}), 0u);
}

TEST(MetricsTest, UnlabelledHistogramStartsAtZero) {
  MetricsRegistry r;
  r.AddHistogram("h", "H.", {}, {1});
  EXPECT_EQ(r.Render(),
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST(MetricsTest, LatencyBucketsRenderLikePrometheusClients) {
  MetricsRegistry r;
  std::vector<double> b = MetricsRegistry::LatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0001);
  EXPECT_EQ(b.back(), 60);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  r.AddHistogram("d_seconds", "D.", {}, b);
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"0.0001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"0.00025\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"60\"} 0\n"));
}

TEST(MetricsTest, FormatValue) {
  EXPECT_EQ(MetricsRegistry::FormatValue(0), "0");
  EXPECT_EQ(MetricsRegistry::FormatValue(-3), "-3");
  EXPECT_EQ(MetricsRegistry::FormatValue(1e6), "1000000");
  EXPECT_EQ(MetricsRegistry::FormatValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(MetricsRegistry::FormatValue(2.5e-7), "2.5e-07");
  EXPECT_EQ(MetricsRegistry::FormatValue(1e20), "1e+20");
  EXPECT_EQ(MetricsRegistry::FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(MetricsRegistry::FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(MetricsRegistry::FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, FamiliesInRegistrationOrderThenCollectorsInOrderAdded) {
  MetricsRegistry r;
  r.AddCollector([](GaugeWriter& w) {
    w.Family("skiff_ingress_in_flight", "In flight.");
    w.Sample({{"service", "b"}}, 2);
    w.Sample({{"service", "a\"q"}}, 0);
  });
  r.AddCounter("zz_total", "Z.", {});
  r.AddHistogram("aa_seconds", "A.", {}, {1});
  r.AddCollector([](GaugeWriter& w) {
    w.Family("skiff_cpu_throttle_transitions_total", "Transitions.", "counter");
    w.Sample({{"instance", "i-1"}, {"direction", "up"}}, 7);
    w.Family("skiff_up", "Up.");
    w.Sample({}, 1);
  });
  // Re-adding returns the first family and does not move it.
  CounterFamily* again = r.AddCounter("zz_total", "Z.", {});
  again->Inc({});
  EXPECT_EQ(r.Render(),
            "# HELP zz_total Z.\n# TYPE zz_total counter\nzz_total 1\n"
            "# HELP aa_seconds A.\n# TYPE aa_seconds histogram\n"
            "aa_seconds_bucket{le=\"1\"} 0\naa_seconds_bucket{le=\"+Inf\"} 0\n"
            "aa_seconds_sum 0\naa_seconds_count 0\n"
            "# HELP skiff_ingress_in_flight In flight.\n"
            "# TYPE skiff_ingress_in_flight gauge\n"
            "skiff_ingress_in_flight{service=\"b\"} 2\n"
            "skiff_ingress_in_flight{service=\"a\\\"q\"} 0\n"
            "# HELP skiff_cpu_throttle_transitions_total Transitions.\n"
            "# TYPE skiff_cpu_throttle_transitions_total counter\n"
            "skiff_cpu_throttle_transitions_total{instance=\"i-1\",direction=\"up\"} 7\n"
            "# HELP skiff_up Up.\n# TYPE skiff_up gauge\nskiff_up 1\n");
}

TEST(MetricsTest, AFamilyStartedAgainByAnotherCollectorContinuesTheFirstGroup) {
  // One collector per instance, each writing the same two families.
  MetricsRegistry r;
  for (const std::string id : {"i-2", "i-1"}) {
    r.AddCollector([id](GaugeWriter& w) {
      w.Family("skiff_cpu_throttle_transitions_total", "Transitions.", "counter");
      w.Sample({{"instance", id}, {"direction", "throttle"}}, 1);
      w.Family("skiff_cpu_quota", "Quota, first help wins.");
      w.Sample({{"instance", id}}, id == "i-1" ? 1000 : 2000);
    });
  }
  EXPECT_EQ(r.Render(),
            "# HELP skiff_cpu_throttle_transitions_total Transitions.\n"
            "# TYPE skiff_cpu_throttle_transitions_total counter\n"
            "skiff_cpu_throttle_transitions_total{instance=\"i-2\",direction=\"throttle\"} 1\n"
            "skiff_cpu_throttle_transitions_total{instance=\"i-1\",direction=\"throttle\"} 1\n"
            "# HELP skiff_cpu_quota Quota, first help wins.\n"
            "# TYPE skiff_cpu_quota gauge\n"
            "skiff_cpu_quota{instance=\"i-2\"} 2000\n"
            "skiff_cpu_quota{instance=\"i-1\"} 1000\n");
}

TEST(MetricsTest, CollectorsSeeCurrentStateAtEveryRender) {
  MetricsRegistry r;
  std::atomic<int> depth{3};
  r.AddCollector([&depth](GaugeWriter& w) {
    w.Family("skiff_ingress_queue_depth", "Queued.");
    w.Sample({{"service", "s"}}, depth.load());
  });
  EXPECT_THAT(r.Render(), HasSubstr("skiff_ingress_queue_depth{service=\"s\"} 3\n"));
  depth = 0;
  EXPECT_THAT(r.Render(), HasSubstr("skiff_ingress_queue_depth{service=\"s\"} 0\n"));
}

TEST(MetricsTest, ConcurrentIncFromEightThreadsSumsExactly) {
  MetricsRegistry r;
  CounterFamily* c = r.AddCounter("c_total", "C.", {"service", "code"});
  HistogramFamily* h = r.AddHistogram("h_seconds", "H.", {"service"}, {0.5});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200000;
  const std::vector<std::string> services = {"a", "b", "c"};
  std::vector<std::thread> threads;
  std::atomic<bool> stop_render{false};
  std::thread renderer([&] {
    while (!stop_render) (void)r.Render();  // scrapes race the increments
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::vector<std::string> first = {services[t % 3], "200"};
      const std::vector<std::string> shared = {"shared", "200"};
      const std::vector<std::string> hs = {services[t % 3]};
      for (int i = 0; i < kPerThread; ++i) {
        c->Inc(shared);
        c->Inc(first);
        h->Observe(hs, (i % 2) ? 1.0 : 0.25);
      }
    });
  }
  for (auto& t : threads) t.join();
  stop_render = true;
  renderer.join();
  EXPECT_EQ(c->Value({"shared", "200"}), double{kThreads} * kPerThread);
  // Threads 0,3,6 → a; 1,4,7 → b; 2,5 → c.
  EXPECT_EQ(c->Value({"a", "200"}), 3.0 * kPerThread);
  EXPECT_EQ(c->Value({"b", "200"}), 3.0 * kPerThread);
  EXPECT_EQ(c->Value({"c", "200"}), 2.0 * kPerThread);
  EXPECT_EQ(h->Count({"a"}), 3u * kPerThread);
  EXPECT_EQ(h->Sum({"c"}), 2.0 * kPerThread / 2 * 1.25);
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("c_total{service=\"shared\",code=\"200\"} 1600000\n"));
  EXPECT_THAT(text, HasSubstr("h_seconds_bucket{service=\"a\",le=\"0.5\"} 300000\n"));
  EXPECT_THAT(text, HasSubstr("h_seconds_bucket{service=\"a\",le=\"+Inf\"} 600000\n"));
}

TEST(MetricsTest, BoundSeriesShareValuesWithTheFamily) {
  MetricsRegistry r;
  CounterFamily* c = r.AddCounter("b_total", "B.", {"service"});
  HistogramFamily* h = r.AddHistogram("b_seconds", "B.", {"service"}, {0.1, 1});
  Counter bound = c->WithLabels({"web"});
  Histogram hb = h->WithLabels({"web"});
  // Binding creates the series: it is rendered at 0 before the first Inc/Observe.
  EXPECT_EQ(r.Render(),
            "# HELP b_total B.\n# TYPE b_total counter\nb_total{service=\"web\"} 0\n"
            "# HELP b_seconds B.\n# TYPE b_seconds histogram\n"
            "b_seconds_bucket{service=\"web\",le=\"0.1\"} 0\n"
            "b_seconds_bucket{service=\"web\",le=\"1\"} 0\n"
            "b_seconds_bucket{service=\"web\",le=\"+Inf\"} 0\n"
            "b_seconds_sum{service=\"web\"} 0\nb_seconds_count{service=\"web\"} 0\n");
  bound.Inc();
  bound.Inc(2);
  c->Inc({"web"});
  EXPECT_EQ(bound.Value(), 4);
  EXPECT_EQ(c->Value({"web"}), 4);
  hb.Observe(0.1);
  hb.Observe(3);
  h->Observe({"web"}, 0.5);
  EXPECT_EQ(hb.Count(), 3u);
  EXPECT_EQ(h->Count({"web"}), 3u);
  EXPECT_DOUBLE_EQ(hb.Sum(), 3.6);
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("b_total{service=\"web\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("b_seconds_bucket{service=\"web\",le=\"0.1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("b_seconds_bucket{service=\"web\",le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("b_seconds_bucket{service=\"web\",le=\"+Inf\"} 3\n"));
  // Binding the same labels again gives the same series.
  c->WithLabels({"web"}).Inc(10);
  EXPECT_EQ(bound.Value(), 14);
}

using MetricsDeathTest = ::testing::Test;

TEST(MetricsDeathTest, ProgrammingErrorsCrashWithAClearMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("bad-name", "", {});
      },
      "invalid metric name \"bad-name\"");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("ok_total", "", {"0abc"});
      },
      "ok_total: invalid label name \"0abc\"");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("ok_total", "", {"__reserved"});
      },
      "invalid label name \"__reserved\"");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddHistogram("h", "", {"le"}, {1});
      },
      "label \"le\" is reserved");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddHistogram("h", "", {}, {2, 1});
      },
      "strictly increasing");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("ok_total", "", {"a", "b"})->Inc({"x"});
      },
      "ok_total: 1 label values for 2 labels \\(a,b\\)");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("ok_total", "", {})->Inc({}, -1);
      },
      "counter increment -1");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("ok_total", "", {"a"})->WithLabels({"x"}).Inc(std::nan(""));
      },
      "ok_total: counter increment nan");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddHistogram("h", "", {"a"}, {1})->WithLabels({});
      },
      "h: 0 label values for 1 labels \\(a\\)");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("ok_total", "", {"a"});
        r.AddCounter("ok_total", "", {"b"});
      },
      "re-added with labels \\(b\\), first added with \\(a\\)");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCounter("x", "", {});
        r.AddHistogram("x", "", {}, {1});
      },
      "already a counter");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddHistogram("lat", "", {}, {1});
        r.AddCollector([](GaugeWriter& w) { w.Family("lat_count", ""); });
        (void)r.Render();
      },
      "collector: metric lat_count is already a registered family");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCollector([](GaugeWriter& w) { w.Family("g", ""); });
        r.AddCollector([](GaugeWriter& w) { w.Family("g", "", "counter"); });
        (void)r.Render();
      },
      "collector: metric g started as counter, earlier as gauge");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCollector([](GaugeWriter& w) {
          w.Family("g", "");
          w.Sample({{"a", "1"}, {"a", "2"}}, 1);
        });
        (void)r.Render();
      },
      "collector: metric g: duplicate label \"a\"");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCollector([](GaugeWriter& w) { w.Sample({}, 1); });
        (void)r.Render();
      },
      "Sample\\(\\) before Family\\(\\)");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.AddCollector([](GaugeWriter& w) { w.Family("bad name", ""); });
        (void)r.Render();
      },
      "collector: invalid metric name");
}

}  // namespace
}  // namespace skiff::ingress
