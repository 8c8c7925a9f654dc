// CpuThrottle on a real cgroup v1 group holding a busy-looping child: the CPU it burns,
// read from the group's own usage counter, while idle, while a request is in flight, in
// INSTANCE mode and under the startup boost. Every group lives under
// skiff-test-throttle-<pid>/ and is removed (its processes killed first) even on failure.

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/ingress/cpu_throttle.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/file_io.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using Clock = std::chrono::steady_clock;

// A forked child spinning on the CPU; SIGKILLed and reaped on destruction.
class Spinner {
 public:
  Spinner() {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      volatile uint64_t sink = 0;
      for (;;) sink = sink + 1;
    }
  }
  ~Spinner() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

std::string ReadTrim(const std::string& p) {
  absl::StatusOr<std::string> s = ReadFileToString(p);
  return s.ok() ? std::string(absl::StripAsciiWhitespace(*s)) : "<missing>";
}

class CpuThrottleCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIFF_ASSERT_OK_AND_ASSIGN(roots_, CgroupRoots::Detect());
    ASSERT_EQ(roots_.version, CgroupVersion::kV1) << "this host is cgroup v1 hybrid";
    base_ = absl::StrCat("skiff-test-throttle-", getpid());
  }
  void TearDown() override {
    spinner_.reset();
    for (const std::string* r :
         {&roots_.cpu, &roots_.cpuacct, &roots_.memory, &roots_.pids, &roots_.freezer}) {
      if (!r->empty()) RemoveTree(*r + "/" + base_);
    }
  }
  static void RemoveTree(const std::string& dir) {
    if (access(dir.c_str(), F_OK) != 0) return;
    absl::StatusOr<std::string> procs = ReadFileToString(dir + "/cgroup.procs");
    if (procs.ok()) {
      for (absl::string_view w : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
        int pid;
        if (absl::SimpleAtoi(w, &pid)) kill(pid, SIGKILL);
      }
    }
    if (DIR* d = opendir(dir.c_str())) {
      std::vector<std::string> subs;
      while (struct dirent* e = readdir(d)) {
        if (e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
          subs.push_back(dir + "/" + e->d_name);
        }
      }
      closedir(d);
      for (const auto& s : subs) RemoveTree(s);
    }
    for (int i = 0; i < 200 && rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // A group at `vcpus_milli` with a spinner in it. The group gets the largest CPU weight
  // so the quota, not other load on this shared host, limits it.
  void StartBusyGroup(const std::string& leaf, uint32_t vcpus_milli) {
    rel_ = absl::StrCat(base_, "/", leaf);
    SKIFF_ASSERT_OK_AND_ASSIGN(cg_, Cgroup::Create(roots_, rel_, {.vcpus_milli = vcpus_milli}));
    SKIFF_ASSERT_OK(WriteControlFile(roots_.cpu + "/" + base_ + "/cpu.shares", "262144"));
    SKIFF_ASSERT_OK(WriteControlFile(roots_.cpu + "/" + rel_ + "/cpu.shares", "262144"));
    spinner_ = std::make_unique<Spinner>();
    ASSERT_GT(spinner_->pid(), 0);
    SKIFF_ASSERT_OK(cg_->AddProcess(spinner_->pid()));
  }
  void StopBusyGroup() {
    SKIFF_EXPECT_OK(cg_->KillAll());
    spinner_.reset();
    SKIFF_EXPECT_OK(cg_->Destroy());
  }
  std::string QuotaFile() { return ReadTrim(roots_.cpu + "/" + rel_ + "/cpu.cfs_quota_us"); }

  // CPU seconds per wall second used by the group over `wall`.
  double MeasureCpu(std::chrono::milliseconds wall) {
    absl::StatusOr<uint64_t> u0 = cg_->CpuUsageNs();
    auto t0 = Clock::now();
    std::this_thread::sleep_for(wall);
    absl::StatusOr<uint64_t> u1 = cg_->CpuUsageNs();
    auto t1 = Clock::now();
    EXPECT_THAT(u0, testing::IsOk());
    EXPECT_THAT(u1, testing::IsOk());
    if (!u0.ok() || !u1.ok()) return -1;
    return static_cast<double>(*u1 - *u0) /
           std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
  }

  CgroupRoots roots_;
  std::string base_;
  std::string rel_;
  std::unique_ptr<Cgroup> cg_;
  std::unique_ptr<Spinner> spinner_;
};

TEST_F(CpuThrottleCgroupTest, RequestAllocationBurnsAlmostNothingBetweenRequests) {
  StartBusyGroup("request", 1000);
  SKIFF_ASSERT_OK_AND_ASSIGN(CpuQuota q, cg_->OpenCpuQuota());
  SKIFF_ASSERT_OK_AND_ASSIGN(auto t, CpuThrottle::Create(std::move(q), {.vcpus_milli = 1000}));
  EXPECT_EQ(QuotaFile(), "100000");
  const double starting = MeasureCpu(std::chrono::milliseconds(500));

  SKIFF_ASSERT_OK(t->Ready());
  EXPECT_EQ(QuotaFile(), "1000");
  const double idle = MeasureCpu(std::chrono::seconds(2));

  SKIFF_ASSERT_OK(t->RequestStarted());
  EXPECT_EQ(QuotaFile(), "100000");
  const double busy = MeasureCpu(std::chrono::seconds(1));

  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_EQ(QuotaFile(), "1000");
  const double idle_again = MeasureCpu(std::chrono::seconds(1));

  // One write each way: how long RequestStarted/RequestFinished take on the real file.
  std::vector<double> up_us, down_us;
  for (int i = 0; i < 200; ++i) {
    auto a = Clock::now();
    SKIFF_ASSERT_OK(t->RequestStarted());
    auto b = Clock::now();
    SKIFF_ASSERT_OK(t->RequestFinished());
    auto c = Clock::now();
    up_us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
    down_us.push_back(std::chrono::duration<double, std::micro>(c - b).count());
  }
  std::sort(up_us.begin(), up_us.end());
  std::sort(down_us.begin(), down_us.end());
  CpuThrottle::Stats s = t->stats();
  std::printf(
      "busy child, 1 vCPU REQUEST: starting %.4f CPU; idle (floor 1000/100000) %.4f CPU over 2 "
      "s; request in flight %.4f CPU over 1 s; idle again %.4f CPU over 1 s\n"
      "RequestStarted (0->1 write) p50 %.1f us p99 %.1f us; RequestFinished (1->0 write) p50 "
      "%.1f us p99 %.1f us; %llu writes\n",
      starting, idle, busy, idle_again, up_us[100], up_us[198], down_us[100], down_us[198],
      static_cast<unsigned long long>(s.writes));
  RecordProperty("idle_cpu", absl::StrCat(idle));
  RecordProperty("busy_cpu", absl::StrCat(busy));
  EXPECT_GT(starting, 0.8) << "not throttled before Ready";
  EXPECT_LE(idle, 0.02);
  EXPECT_GE(busy, 0.8);
  EXPECT_LE(idle_again, 0.02);
  EXPECT_EQ(s.writes, 1u + 1 + 2 + 400);
  EXPECT_EQ(s.state, CpuThrottle::State::kThrottled);
  EXPECT_EQ(QuotaFile(), "1000");
  StopBusyGroup();
}

TEST_F(CpuThrottleCgroupTest, InstanceAllocationStaysUnthrottled) {
  StartBusyGroup("instance", 1000);
  SKIFF_ASSERT_OK_AND_ASSIGN(CpuQuota q, cg_->OpenCpuQuota());
  SKIFF_ASSERT_OK_AND_ASSIGN(
      auto t, CpuThrottle::Create(
                  std::move(q), {.vcpus_milli = 1000, .cpu_allocation = CpuAllocation::kInstance}));
  SKIFF_ASSERT_OK(t->Ready());
  SKIFF_ASSERT_OK(t->RequestStarted());
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_EQ(QuotaFile(), "100000");
  const double idle = MeasureCpu(std::chrono::seconds(1));
  std::printf("busy child, 1 vCPU INSTANCE, no request in flight: %.4f CPU over 1 s\n", idle);
  EXPECT_GE(idle, 0.8);
  EXPECT_EQ(t->stats().writes, 1u);
  StopBusyGroup();
}

TEST_F(CpuThrottleCgroupTest, StartupBoostDoublesTheLimitUntilReadyPlusTenSeconds) {
  // 0.5 vCPU: boosted, one spinner gets a whole CPU; then the normal half; then the floor.
  StartBusyGroup("boost", 500);
  absl::Mutex mu;
  absl::Time now = absl::Now();
  auto advance = [&](absl::Duration d) {
    absl::MutexLock l(&mu);
    now += d;
  };
  SKIFF_ASSERT_OK_AND_ASSIGN(CpuQuota q, cg_->OpenCpuQuota());
  SKIFF_ASSERT_OK_AND_ASSIGN(
      auto t, CpuThrottle::Create(std::move(q),
                                  {.vcpus_milli = 500, .startup_cpu_boost = true, .clock = [&] {
                                     absl::MutexLock l(&mu);
                                     return now;
                                   }}));
  EXPECT_EQ(QuotaFile(), "100000");
  SKIFF_ASSERT_OK(t->Ready());
  const double boosted = MeasureCpu(std::chrono::seconds(1));
  SKIFF_ASSERT_OK(t->RequestStarted());
  advance(absl::Seconds(10));
  SKIFF_ASSERT_OK(t->Tick());
  EXPECT_EQ(QuotaFile(), "50000");
  const double normal = MeasureCpu(std::chrono::seconds(1));
  SKIFF_ASSERT_OK(t->RequestFinished());
  EXPECT_EQ(QuotaFile(), "1000");
  const double idle = MeasureCpu(std::chrono::milliseconds(500));
  std::printf(
      "busy child, 0.5 vCPU REQUEST with boost: boosted %.4f CPU; after Ready+10 s "
      "with a request %.4f CPU; idle %.4f CPU\n",
      boosted, normal, idle);
  EXPECT_GE(boosted, 0.8);
  EXPECT_NEAR(normal, 0.5, 0.1);
  EXPECT_LE(idle, 0.02);
  StopBusyGroup();
}

}  // namespace
}  // namespace skiff::ingress
