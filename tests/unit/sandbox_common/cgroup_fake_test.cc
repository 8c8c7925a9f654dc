// cgroup v2 (and v1 combined cpu,cpuacct) against temp directories that mimic the
// kernel's files, plus CgroupRoots::DetectFrom on sample mountinfo texts.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/file_io.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/sandbox_common/temp_dir.h"

namespace skiff {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::skiff::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P(IsOkAndHolds, v, "is OK and holds " + ::testing::PrintToString(v)) {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  *result_listener << "holds " << ::testing::PrintToString(*arg);
  return *arg == v;
}

std::string Read(const std::string& p) {
  absl::StatusOr<std::string> s = ReadFileToString(p);
  return s.ok() ? *s : "<" + std::string(s.status().message()) + ">";
}
void Write(const std::string& p, const std::string& c) { ASSERT_THAT(WriteNewFile(p, c), IsOk()); }
bool Exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

// The files cgroup2 creates in a new group. Files the code only writes start empty
// (a regular file is not truncated by a control-file write).
absl::Status FillV2Group(const std::string& dir) {
  const std::pair<const char*, const char*> files[] = {
      {"cgroup.controllers", "cpu memory pids"},
      {"cgroup.subtree_control", ""},
      {"cgroup.procs", ""},
      {"cgroup.kill", ""},
      {"cgroup.freeze", ""},
      {"cgroup.events", "populated 0\nfrozen 0\n"},
      {"cpu.max", ""},
      {"cpu.weight", ""},
      {"cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"},
      {"memory.max", ""},
      {"memory.swap.max", ""},
      {"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"},
      {"pids.max", ""},
  };
  for (const auto& [name, content] : files) {
    if (absl::Status s = WriteNewFile(dir + "/" + name, content); !s.ok()) return s;
  }
  return absl::OkStatus();
}

class FakeV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    Write(tmp_.path() + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    Write(tmp_.path() + "/cgroup.subtree_control", "");
    roots_.version = CgroupVersion::kV2;
    roots_.unified = tmp_.path();
    roots_.after_mkdir_for_testing = [this](const std::string& dir) {
      made_.push_back(dir);
      return FillV2Group(dir);
    };
  }
  std::string P(const std::string& rel) { return tmp_.path() + "/" + rel; }

  TempDir tmp_;
  CgroupRoots roots_;
  std::vector<std::string> made_;
};

TEST_F(FakeV2Test, CreateEnablesControllersAndWritesLimits) {
  CgroupLimits l{.vcpus_milli = 500, .memory_bytes = 64 << 20, .pids_max = 50};
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, "skiff/i-1", l));
  EXPECT_EQ(cg->version(), CgroupVersion::kV2);
  EXPECT_EQ(cg->rel_path(), "skiff/i-1");
  EXPECT_THAT(made_, ElementsAre(P("skiff"), P("skiff/i-1")));
  EXPECT_EQ(Read(P("cgroup.subtree_control")), "+cpu +memory +pids");
  EXPECT_EQ(Read(P("skiff/cgroup.subtree_control")), "+cpu +memory +pids");
  EXPECT_EQ(Read(P("skiff/i-1/cgroup.subtree_control")), "");  // leaf: nothing enabled
  EXPECT_EQ(Read(P("skiff/i-1/cpu.max")), "50000 100000");
  EXPECT_EQ(Read(P("skiff/i-1/cpu.weight")), "20");  // 512 shares on the 1..10000 scale
  EXPECT_EQ(Read(P("skiff/i-1/memory.max")), "67108864");
  EXPECT_EQ(Read(P("skiff/i-1/memory.swap.max")), "0");
  EXPECT_EQ(Read(P("skiff/i-1/pids.max")), "50");

  EXPECT_THAT(Cgroup::Create(roots_, "skiff/i-1", l), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(FakeV2Test, UnlimitedAndMinimumQuota) {
  Write(P("cgroup.subtree_control"), "cpu memory pids");  // already enabled: no write
  CgroupLimits l{.vcpus_milli = 1, .memory_bytes = 0, .pids_max = 0, .cpu_period_us = 50000};
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, "i-2", l));
  EXPECT_EQ(Read(P("cgroup.subtree_control")), "cpu memory pids");
  EXPECT_EQ(Read(P("i-2/cpu.max")), "1000 50000");  // 1 milli-vCPU → kernel minimum
  EXPECT_EQ(Read(P("i-2/cpu.weight")), "1");
  EXPECT_EQ(Read(P("i-2/memory.max")), "max");
  EXPECT_EQ(Read(P("i-2/pids.max")), "max");
}

TEST_F(FakeV2Test, MissingControllerFailsAndLeavesNothing) {
  Write(P("cgroup.controllers"), "cpu memory io\n");  // no pids
  EXPECT_THAT(Cgroup::Create(roots_, "skiff/i-3", {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("pids")));
  EXPECT_FALSE(Exists(P("skiff")));
}

TEST_F(FakeV2Test, FailingLimitWriteIsReported) {
  roots_.after_mkdir_for_testing = [this](const std::string& dir) -> absl::Status {
    if (absl::Status s = FillV2Group(dir); !s.ok()) return s;
    if (dir == P("a/b")) unlink((dir + "/pids.max").c_str());  // the limit write will fail
    return absl::OkStatus();
  };
  CgroupLimits l{.pids_max = 10};
  EXPECT_THAT(Cgroup::Create(roots_, "a/b", l),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("a/b/pids.max")));
}

TEST_F(FakeV2Test, BadPathsAreInvalidArgument) {
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "a/", ".", "a b", "x/./y"}) {
    EXPECT_THAT(Cgroup::Create(roots_, bad, {}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cgroup path")))
        << bad;
  }
  EXPECT_THAT(Cgroup::Open(roots_, "nope"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(FakeV2Test, ProcsOomCpuUsageQuotaKillDestroy) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, "i-4", {}));
  const std::string d = P("i-4");

  SKIFF_ASSERT_OK(cg->AddProcess(4242));
  EXPECT_EQ(Read(d + "/cgroup.procs"), "4242");
  SKIFF_ASSERT_OK_AND_ASSIGN(auto procs, cg->Procs());
  EXPECT_THAT(procs, ElementsAre(4242));
  EXPECT_THAT(cg->AddProcess(0), StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(cg->OomKilled(), IsOkAndHolds(false));
  Write(d + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
  EXPECT_THAT(cg->OomKilled(), IsOkAndHolds(true));

  Write(d + "/cpu.stat", "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n");
  EXPECT_THAT(cg->CpuUsageNs(), IsOkAndHolds(1234000u));

  // Reopen by path: same files.
  SKIFF_ASSERT_OK_AND_ASSIGN(auto again, Cgroup::Open(roots_, "i-4"));
  EXPECT_THAT(again->CpuUsageNs(), IsOkAndHolds(1234000u));

  SKIFF_ASSERT_OK_AND_ASSIGN(CpuQuota q, cg->OpenCpuQuota());
  EXPECT_EQ(q.period_us(), 100000u);
  ASSERT_EQ(truncate((d + "/cpu.max").c_str(), 0), 0);
  SKIFF_ASSERT_OK(q.Set(2500));
  EXPECT_EQ(Read(d + "/cpu.max"), "2500 100000");
  SKIFF_ASSERT_OK(q.Set(99000));
  EXPECT_EQ(Read(d + "/cpu.max"), "99000 100000");
  EXPECT_THAT(q.Set(999), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("999")));

  // KillAll writes cgroup.kill, then waits for cgroup.procs to empty (the "kernel" here
  // is a thread that empties it once it sees the kill).
  std::atomic<bool> saw_kill{false};
  std::thread kernel([&] {
    for (int i = 0; i < 2000 && !saw_kill; ++i) {
      if (Read(d + "/cgroup.kill") == "1") {
        saw_kill = true;
        Write(d + "/cgroup.procs", "");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  absl::Status killed = cg->KillAll(2000);
  kernel.join();
  EXPECT_THAT(killed, IsOk());
  EXPECT_TRUE(saw_kill);

  // With cgroup.procs never emptying, KillAll reports the leftover pid at the deadline.
  Write(d + "/cgroup.procs", "777\n");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THAT(cg->KillAll(200), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("777")));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));

  // The kernel's rmdir ignores its control files; the fake's files must go first.
  for (const char* f : {"cgroup.controllers", "cgroup.subtree_control", "cgroup.procs",
                        "cgroup.kill", "cgroup.freeze", "cgroup.events", "cpu.max", "cpu.weight",
                        "cpu.stat", "memory.max", "memory.swap.max", "memory.events", "pids.max"}) {
    unlink((d + "/" + f).c_str());
  }
  SKIFF_ASSERT_OK(cg->Destroy());
  EXPECT_FALSE(Exists(d));
  SKIFF_EXPECT_OK(cg->Destroy());  // already gone is fine
}

// Without cgroup.kill (kernels before 5.14) KillAll freezes, SIGKILLs each member and
// thaws. The member here is a real child of the test; the fake never reports "frozen",
// so this also covers a freeze that does not complete in time.
TEST_F(FakeV2Test, KillAllWithoutCgroupKillSignalsEachMemberAndThaws) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots_, "i-5", {}));
  const std::string d = P("i-5");
  ASSERT_EQ(unlink((d + "/cgroup.kill").c_str()), 0);
  pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  ASSERT_GT(child, 0);
  absl::Cleanup reap = [child] {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  };
  SKIFF_ASSERT_OK(cg->AddProcess(child));
  int wait_status = 0;
  std::thread kernel([&] {
    // Plays the kernel: once the child is dead, it leaves cgroup.procs.
    if (waitpid(child, &wait_status, 0) == child) Write(d + "/cgroup.procs", "");
  });
  absl::Status killed = cg->KillAll(3000);
  kernel.join();
  std::move(reap).Cancel();
  EXPECT_THAT(killed, IsOk());
  EXPECT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL) << wait_status;
  EXPECT_EQ(Read(d + "/cgroup.freeze"), "0");  // thawed after the attempt
}

// v1 with cpu and cpuacct co-mounted (one directory), memory and pids separate.
TEST(FakeV1Test, CombinedCpuCpuacctCreatesOneDirPerHierarchy) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string cpu = tmp.path() + "/cpu,cpuacct", mem = tmp.path() + "/memory",
                    pids = tmp.path() + "/pids";
  for (const auto& d : {cpu, mem, pids}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  CgroupRoots roots;
  roots.version = CgroupVersion::kV1;
  roots.cpu = roots.cpuacct = cpu;
  roots.memory = mem;
  roots.pids = pids;
  std::vector<std::string> made;
  roots.after_mkdir_for_testing = [&](const std::string& dir) -> absl::Status {
    made.push_back(dir);
    for (const char* f : {"cgroup.procs", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares",
                          "memory.limit_in_bytes", "pids.max"}) {
      if (absl::Status s = WriteNewFile(dir + "/" + f, ""); !s.ok()) return s;
    }
    return WriteNewFile(dir + "/cpuacct.usage", "987654321\n");
  };
  CgroupLimits l{.vcpus_milli = 2000, .memory_bytes = 1 << 30, .pids_max = 64};
  SKIFF_ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(roots, "s/i", l));
  EXPECT_EQ(cg->version(), CgroupVersion::kV1);
  EXPECT_THAT(made, ElementsAre(cpu + "/s", cpu + "/s/i", mem + "/s", mem + "/s/i", pids + "/s",
                                pids + "/s/i"));
  EXPECT_EQ(Read(cpu + "/s/i/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(Read(cpu + "/s/i/cpu.cfs_quota_us"), "200000");
  EXPECT_EQ(Read(cpu + "/s/i/cpu.shares"), "2048");
  EXPECT_EQ(Read(mem + "/s/i/memory.limit_in_bytes"), "1073741824");
  EXPECT_EQ(Read(pids + "/s/i/pids.max"), "64");
  SKIFF_ASSERT_OK(cg->AddProcess(31337));
  for (const auto& d : {cpu, mem, pids}) EXPECT_EQ(Read(d + "/s/i/cgroup.procs"), "31337");
  EXPECT_THAT(cg->CpuUsageNs(), IsOkAndHolds(987654321u));
  SKIFF_ASSERT_OK_AND_ASSIGN(CpuQuota q, cg->OpenCpuQuota());
  EXPECT_EQ(q.period_us(), 100000u);
  ASSERT_EQ(truncate((cpu + "/s/i/cpu.cfs_quota_us").c_str(), 0), 0);
  SKIFF_ASSERT_OK(q.Set(1000));
  EXPECT_EQ(Read(cpu + "/s/i/cpu.cfs_quota_us"), "1000");
}

// A failure half-way (here: in the second hierarchy) removes every directory created so
// far, in every hierarchy, and nothing that existed before.
TEST(FakeV1Test, FailureRollsBackEveryCreatedDirectory) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string cpu = tmp.path() + "/cpu", acct = tmp.path() + "/cpuacct",
                    mem = tmp.path() + "/memory";
  for (const auto& d : {cpu, acct, mem}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((cpu + "/s").c_str(), 0755), 0);  // pre-existing parent: must survive
  CgroupRoots roots;
  roots.version = CgroupVersion::kV1;
  roots.cpu = cpu;
  roots.cpuacct = acct;
  roots.memory = mem;
  roots.after_mkdir_for_testing = [&](const std::string& dir) -> absl::Status {
    if (dir == mem + "/s/i") return absl::InternalError("injected");
    return absl::OkStatus();
  };
  EXPECT_THAT(Cgroup::Create(roots, "s/i", {}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("injected")));
  EXPECT_TRUE(Exists(cpu + "/s"));
  for (const auto& gone : {cpu + "/s/i", acct + "/s", mem + "/s"})
    EXPECT_FALSE(Exists(gone)) << gone;
}

// ---- DetectFrom ----

class DetectTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  absl::StatusOr<CgroupRoots> DetectText(const std::string& text) {
    const std::string p = tmp_.path() + "/mountinfo";
    if (absl::Status s = WriteNewFile(p, text); !s.ok()) return s;
    return CgroupRoots::DetectFrom(p);
  }
  TempDir tmp_;
};

TEST_F(DetectTest, HybridV1WithSeparateCpuAndCpuacct) {
  // This host's layout: a controller-less cgroup2 next to the v1 hierarchies.
  const std::string uni = tmp_.path() + "/unified";
  ASSERT_EQ(mkdir(uni.c_str(), 0755), 0);
  Write(uni + "/cgroup.controllers", "hugetlb\n");
  const std::string text =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
      "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
      "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
      "41 31 0:38 / " +
      uni + " rw,relatime - cgroup2 cgroup2 rw\n";
  SKIFF_ASSERT_OK_AND_ASSIGN(CgroupRoots r, DetectText(text));
  EXPECT_EQ(r.version, CgroupVersion::kV1);
  EXPECT_EQ(r.cpu, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(r.cpuacct, "/sys/fs/cgroup/cpuacct");
  EXPECT_EQ(r.memory, "/sys/fs/cgroup/memory");
  EXPECT_EQ(r.pids, "/sys/fs/cgroup/pids");
  EXPECT_EQ(r.freezer, "/sys/fs/cgroup/freezer");
  EXPECT_EQ(r.unified, uni);
}

TEST_F(DetectTest, CombinedCpuCpuacctAndOptionalFields) {
  // Optional fields ("shared:N master:M") before the separator; a bind mount of a
  // subtree listed first loses to the hierarchy's root mount.
  const std::string text =
      "25 24 0:22 /sub /mnt/bind rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
      "26 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 master:1 - cgroup cgroup "
      "rw,cpu,cpuacct\n"
      "27 24 0:23 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory\n";
  SKIFF_ASSERT_OK_AND_ASSIGN(CgroupRoots r, DetectText(text));
  EXPECT_EQ(r.version, CgroupVersion::kV1);
  EXPECT_EQ(r.cpu, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(r.cpuacct, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(r.memory, "/sys/fs/cgroup/memory");
  EXPECT_EQ(r.pids, "");
  EXPECT_EQ(r.freezer, "");
}

TEST_F(DetectTest, PureV2) {
  const std::string uni = tmp_.path() + "/with space";
  ASSERT_EQ(mkdir(uni.c_str(), 0755), 0);
  Write(uni + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  // mountinfo escapes the space as \040.
  const std::string text = "23 1 0:21 / " + tmp_.path() +
                           "/with\\040space rw,nosuid,nodev - cgroup2 cgroup2 "
                           "rw,nsdelegate,memory_recursiveprot\n";
  SKIFF_ASSERT_OK_AND_ASSIGN(CgroupRoots r, DetectText(text));
  EXPECT_EQ(r.version, CgroupVersion::kV2);
  EXPECT_EQ(r.unified, uni);
  EXPECT_EQ(r.cpu, "");
}

TEST_F(DetectTest, NothingUsable) {
  EXPECT_THAT(DetectText("22 1 0:5 / /proc rw - proc proc rw\nthis line is garbage\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mountinfo")));
  EXPECT_THAT(CgroupRoots::DetectFrom(tmp_.path() + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST(DetectHostTest, ThisHostIsV1Hybrid) {
  SKIFF_ASSERT_OK_AND_ASSIGN(CgroupRoots r, CgroupRoots::Detect());
  EXPECT_EQ(r.version, CgroupVersion::kV1);
  EXPECT_FALSE(r.cpu.empty());
  EXPECT_FALSE(r.cpuacct.empty());
  EXPECT_FALSE(r.memory.empty());
}

}  // namespace
}  // namespace skiff
