// cgroup v1 on this host's real hierarchies (privileged). Every group lives under
// skiff-test-<pid>/ and is removed (its processes killed first) even when a test fails.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;

using Clock = std::chrono::steady_clock;

std::string ReadTrim(const std::string& p) {
  absl::StatusOr<std::string> s = ReadFileToString(p);
  return s.ok() ? std::string(absl::StripAsciiWhitespace(*s)) : "<missing>";
}
bool Exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

// A forked child parked on a pipe until Release(); SIGKILLed and reaped on destruction.
class Child {
 public:
  explicit Child(void (*body)()) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      UniqueFd{p[1]}.Reset();
      char c;
      if (read(p[0], &c, 1) != 1) _exit(100);
      body();
      _exit(0);
    }
    UniqueFd{p[0]}.Reset();
    go_.Reset(p[1]);
  }
  ~Child() {
    go_.Reset();
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void Release() {
    char c = 'g';
    ASSERT_EQ(write(go_.get(), &c, 1), 1);
  }
  // Waits for exit; returns the wait status.
  int Wait() {
    int st = 0;
    waitpid(pid_, &st, 0);
    reaped_ = true;
    return st;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd go_;
  bool reaped_ = false;
};

void Spin() {
  volatile uint64_t sink = 0;
  for (;;) sink = sink + 1;
}
void Park() {
  for (;;) pause();
}
void HogMemory() {
  // Touch 512 MiB in 1 MiB chunks; in a 32 MiB group the OOM killer ends this first.
  for (int i = 0; i < 512; ++i) {
    char* p = static_cast<char*>(malloc(1 << 20));
    if (p == nullptr) _exit(3);
    memset(p, i, 1 << 20);
  }
  _exit(0);
}
void ForkThreeGrandchildrenThenPark() {
  for (int i = 0; i < 3; ++i) {
    pid_t p = fork();
    if (p == 0) Park();
  }
  Park();
}

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIFF_ASSERT_OK_AND_ASSIGN(roots_, CgroupRoots::Detect());
    ASSERT_EQ(roots_.version, CgroupVersion::kV1) << "this host is cgroup v1 hybrid";
    base_ = absl::StrCat("skiff-test-", getpid());
  }
  void TearDown() override {
    // Whatever a failed test left: kill members, remove groups depth-first, then base.
    for (const std::string* r :
         {&roots_.cpu, &roots_.cpuacct, &roots_.memory, &roots_.pids, &roots_.freezer}) {
      if (r->empty()) continue;
      RemoveTree(*r + "/" + base_);
    }
  }
  static void RemoveTree(const std::string& dir) {
    if (!Exists(dir)) return;
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
  std::string Rel(const std::string& leaf) { return base_ + "/" + leaf; }
  std::vector<std::string> AllDirs(const std::string& rel) {
    std::vector<std::string> out;
    for (const std::string* r :
         {&roots_.cpu, &roots_.cpuacct, &roots_.memory, &roots_.pids, &roots_.freezer}) {
      if (!r->empty()) out.push_back(*r + "/" + rel);
    }
    return out;
  }
  // The quota, not other load on this shared host, must be what limits a busy child:
  // give the group the largest CPU weight so it wins against ordinary work (the quota
  // still caps it).
  void OutweighOtherLoad(const std::string& rel) {
    // The weight that competes at the top is the test's parent group's.
    SKIFF_ASSERT_OK(WriteControlFile(roots_.cpu + "/" + base_ + "/cpu.shares", "262144"));
    SKIFF_ASSERT_OK(WriteControlFile(roots_.cpu + "/" + rel + "/cpu.shares", "262144"));
  }
  // CPU seconds per wall second used by the group over `wall`.
  double MeasureCpu(Cgroup& cg, std::chrono::milliseconds wall) {
    absl::StatusOr<uint64_t> u0 = cg.CpuUsageNs();
    auto t0 = Clock::now();
    std::this_thread::sleep_for(wall);
    absl::StatusOr<uint64_t> u1 = cg.CpuUsageNs();
    auto t1 = Clock::now();
    EXPECT_THAT(u0, IsOk());
    EXPECT_THAT(u1, IsOk());
    if (!u0.ok() || !u1.ok()) return -1;
    return static_cast<double>(*u1 - *u0) /
           std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
  }

  CgroupRoots roots_;
  std::string base_;
};

TEST_F(CgroupV1Test, CreateWritesLimitsOpenAndDestroyRemoveEveryDir) {
  CgroupLimits l{.vcpus_milli = 1500, .memory_bytes = 64 << 20, .pids_max = 100};
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, Rel("limits"), l));
  EXPECT_EQ(cg->version(), CgroupVersion::kV1);
  for (const auto& d : AllDirs(Rel("limits"))) EXPECT_TRUE(Exists(d)) << d;
  EXPECT_EQ(ReadTrim(roots_.cpu + "/" + Rel("limits") + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(ReadTrim(roots_.cpu + "/" + Rel("limits") + "/cpu.cfs_quota_us"), "150000");
  EXPECT_EQ(ReadTrim(roots_.cpu + "/" + Rel("limits") + "/cpu.shares"), "1536");
  EXPECT_EQ(ReadTrim(roots_.memory + "/" + Rel("limits") + "/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(ReadTrim(roots_.pids + "/" + Rel("limits") + "/pids.max"), "100");
  if (Exists(roots_.memory + "/" + Rel("limits") + "/memory.memsw.limit_in_bytes")) {
    EXPECT_EQ(ReadTrim(roots_.memory + "/" + Rel("limits") + "/memory.memsw.limit_in_bytes"),
              "67108864");
  }

  EXPECT_THAT(Cgroup::Create(roots_, Rel("limits"), l),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("limits")));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto opened, Cgroup::Open(roots_, Rel("limits")));
  EXPECT_THAT(opened->Procs(), IsOk());

  SKIFF_ASSERT_OK(cg->Destroy());
  for (const auto& d : AllDirs(Rel("limits"))) EXPECT_FALSE(Exists(d)) << d;
  SKIFF_EXPECT_OK(cg->Destroy());
  EXPECT_THAT(Cgroup::Open(roots_, Rel("limits")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(CgroupV1Test, FailedCreateLeavesNoDirectory) {
  // The limits are checked after the directories exist: the rollback must remove them
  // (parents it created included) from every hierarchy.
  CgroupLimits bad{.cpu_period_us = 10};
  EXPECT_THAT(Cgroup::Create(roots_, Rel("rollback/leaf"), bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cpu_period_us")));
  for (const auto& d : AllDirs(Rel("rollback"))) EXPECT_FALSE(Exists(d)) << d;
  // Paths that would leave the hierarchy never reach mkdir.
  EXPECT_THAT(Cgroup::Create(roots_, "../escape", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cgroup path")));
}

TEST_F(CgroupV1Test, AddProcessMovesItIntoEveryHierarchy) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, Rel("member"), {}));
  Child child(&Park);
  ASSERT_GT(child.pid(), 0);
  SKIFF_ASSERT_OK(cg->AddProcess(child.pid()));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto procs, cg->Procs());
  EXPECT_THAT(procs, ::testing::ElementsAre(child.pid()));
  const std::string self = ReadTrim(absl::StrCat("/proc/", child.pid(), "/cgroup"));
  for (const char* ctl : {":cpu:/", ":cpuacct:/", ":memory:/", ":pids:/", ":freezer:/"}) {
    EXPECT_THAT(self, HasSubstr(absl::StrCat(ctl, Rel("member")))) << ctl;
  }
  // A non-empty group cannot be destroyed; the error names the directory.
  EXPECT_THAT(cg->Destroy(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rmdir(")));
  SKIFF_ASSERT_OK(cg->KillAll());
  EXPECT_TRUE(WIFSIGNALED(child.Wait()));
  SKIFF_ASSERT_OK(cg->Destroy());
}

TEST_F(CgroupV1Test, HalfVcpuLimitGivesHalfACpu) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, Rel("half"), {.vcpus_milli = 500}));
  OutweighOtherLoad(Rel("half"));
  Child busy(&Spin);
  ASSERT_GT(busy.pid(), 0);
  SKIFF_ASSERT_OK(cg->AddProcess(busy.pid()));
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t before, cg->CpuUsageNs());
  busy.Release();
  const double cpus = MeasureCpu(*cg, std::chrono::seconds(3));
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t after, cg->CpuUsageNs());
  EXPECT_GT(after, before + 1000000000ull);  // well over 1 s of CPU in 3 s
  RecordProperty("cpus_at_0_5_vcpu", absl::StrCat(cpus));
  std::printf("0.5 vCPU limit: busy child used %.3f CPU over 3 s\n", cpus);
  EXPECT_NEAR(cpus, 0.5, 0.1);
  SKIFF_ASSERT_OK(cg->KillAll());
  busy.Wait();
  SKIFF_ASSERT_OK(cg->Destroy());
}

TEST_F(CgroupV1Test, CpuQuotaSetTakesEffectWithOneWrite) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, Rel("quota"), {.vcpus_milli = 1000}));
  OutweighOtherLoad(Rel("quota"));
  SKIFF_ASSERT_OK_AND_ASSIGN(CpuQuota q, cg->OpenCpuQuota());
  EXPECT_EQ(q.period_us(), 100000u);
  Child busy(&Spin);
  SKIFF_ASSERT_OK(cg->AddProcess(busy.pid()));
  busy.Release();
  const double full = MeasureCpu(*cg, std::chrono::milliseconds(700));
  SKIFF_ASSERT_OK(q.Set(20000));
  EXPECT_EQ(ReadTrim(roots_.cpu + "/" + Rel("quota") + "/cpu.cfs_quota_us"), "20000");
  const double throttled = MeasureCpu(*cg, std::chrono::milliseconds(1000));
  SKIFF_ASSERT_OK(q.Set(1000));  // the "almost nothing" of request-based CPU
  const double idle = MeasureCpu(*cg, std::chrono::milliseconds(500));
  std::printf("quota 100000: %.3f CPU; 20000: %.3f CPU; 1000: %.3f CPU\n", full, throttled, idle);
  EXPECT_GT(full, 0.8);
  EXPECT_NEAR(throttled, 0.2, 0.06);
  EXPECT_LT(idle, 0.03);
  EXPECT_THAT(q.Set(10), StatusIs(absl::StatusCode::kInvalidArgument));
  SKIFF_ASSERT_OK(cg->KillAll());
  busy.Wait();
  SKIFF_ASSERT_OK(cg->Destroy());
}

TEST_F(CgroupV1Test, MemoryHogIsOomKilled) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg,
                             Cgroup::Create(roots_, Rel("oom"), {.memory_bytes = 32 << 20}));
  EXPECT_THAT(cg->OomKilled(), ::testing::AllOf(IsOk()));
  ASSERT_FALSE(*cg->OomKilled());
  Child hog(&HogMemory);
  SKIFF_ASSERT_OK(cg->AddProcess(hog.pid()));
  hog.Release();
  const int st = hog.Wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << "hog exited with " << st;
  EXPECT_EQ(WTERMSIG(st), SIGKILL);
  SKIFF_ASSERT_OK_AND_ASSIGN(bool oom, cg->OomKilled());
  EXPECT_TRUE(oom);
  SKIFF_ASSERT_OK(cg->Destroy());
}

TEST_F(CgroupV1Test, KillAllKillsForkedGrandchildren) {
  // Be the subreaper so the grandchildren are ours to reap.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  absl::Cleanup unreaper = [] { prctl(PR_SET_CHILD_SUBREAPER, 0); };
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, Rel("tree"), {.pids_max = 20}));
  Child parent(&ForkThreeGrandchildrenThenPark);
  SKIFF_ASSERT_OK(cg->AddProcess(parent.pid()));
  parent.Release();
  std::vector<pid_t> procs;
  for (auto t0 = Clock::now(); Clock::now() - t0 < std::chrono::seconds(5);) {
    SKIFF_ASSERT_OK_AND_ASSIGN(procs, cg->Procs());
    if (procs.size() == 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(procs.size(), 4u);
  auto t0 = Clock::now();
  SKIFF_ASSERT_OK(cg->KillAll(2000));
  const auto took = Clock::now() - t0;
  std::printf(
      "KillAll of 4 processes: %lld us\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto left, cg->Procs());
  EXPECT_TRUE(left.empty());
  // Every member died of SIGKILL: reap all four (the child and three reparented).
  std::set<pid_t> reaped;
  for (int i = 0; i < 4; ++i) {
    int st = 0;
    pid_t p = i == 0 ? (st = parent.Wait(), parent.pid()) : waitpid(-1, &st, 0);
    ASSERT_GT(p, 0);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "pid " << p << " status " << st;
    reaped.insert(p);
  }
  for (pid_t p : procs) EXPECT_THAT(reaped, Contains(p));
  EXPECT_EQ(ReadTrim(roots_.freezer + "/" + Rel("tree") + "/freezer.state"), "THAWED");
  SKIFF_ASSERT_OK(cg->Destroy());
  for (const auto& d : AllDirs(Rel("tree"))) EXPECT_FALSE(Exists(d)) << d;
}

}  // namespace
}  // namespace skiff
