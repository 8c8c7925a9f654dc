// End-to-end through the real skiffd + skiff-shim + docker-registry, for what the agent's
// own end-to-end test (tests/integration/agent/skiffd_e2e_test.cc) does not cover: CPU
// limits measured from the cgroup, the isolation an instance sees, blocked syscalls,
// the multi-layer image's tree inside a sandbox, and the full event sequence.
// Each test checks the host afterwards: no mount, cgroup, link or netns left behind.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "sandbox/common/status.h"
#include "tests/support/host_state.h"
#include "tests/support/registry.h"
#include "tests/support/skiffd_process.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kMiB = 1024 * 1024;

class E2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = reg->release();
    absl::Status s = registry_->PushExampleImages({"hello", "multilayer"});
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  HostStateOptions HostOptions() {
    HostStateOptions o;
    o.cgroup_prefixes = {skiffd_->options().cgroup_parent};
    return o;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    SkiffdOptions opts;
    opts.insecure_registries = {registry_->address()};
    SKIFF_ASSERT_OK_AND_ASSIGN(skiffd_, SkiffdProcess::Create(opts));
    SKIFF_ASSERT_OK_AND_ASSIGN(before_, HostState::Capture(HostOptions()));
    SKIFF_ASSERT_OK(skiffd_->Start());
  }

  void TearDown() override {
    if (skiffd_ == nullptr) return;
    if (skiffd_->running()) {
      SKIFF_EXPECT_OK(skiffd_->DeleteAll());
    }
    SKIFF_EXPECT_OK(skiffd_->Stop());
    // The per-test cgroup parent is the fixture's, not an instance's: remove it.
    skiffd_->RemoveCgroupParent();
    auto after = HostState::Capture(HostOptions());
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(DiffHostState(before_, *after), "") << "left behind on the host";
    skiffd_.reset();
  }

  v1::Agent::Stub& stub() { return skiffd_->stub(); }

  // A JOB (or SERVICE) from an example image running `sh -c script`.
  v1::InstanceSpec ShellSpec(const std::string& image, const std::string& script, bool job = true) {
    v1::InstanceSpec spec;
    spec.set_image(registry_->Reference(image));
    spec.set_memory_bytes(64 * kMiB);
    spec.set_vcpus_milli(1000);
    if (job) spec.set_kind(v1::JOB);
    spec.add_command("/bin/sh");
    spec.add_args("-c");
    spec.add_args(script);
    return spec;
  }

  absl::Status Create(const std::string& id, const v1::InstanceSpec& spec) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::CreateInstanceRequest req;
    req.set_instance_id(id);
    *req.mutable_spec() = spec;
    v1::Instance out;
    return FromGrpc(stub().CreateInstance(&ctx, req, &out), "CreateInstance(" + id + ")");
  }

  absl::Status Stop(const std::string& id, int64_t grace_s = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::StopInstanceRequest req;
    req.set_instance_id(id);
    req.mutable_grace()->set_seconds(grace_s);
    v1::Instance out;
    return FromGrpc(stub().StopInstance(&ctx, req, &out), "StopInstance(" + id + ")");
  }

  // Runs a job to completion and returns its output; the job must exit 0.
  absl::StatusOr<std::string> RunJob(const std::string& id, const std::string& image,
                                     const std::string& script) {
    SKIFF_RETURN_IF_ERROR(Create(id, ShellSpec(image, script)));
    SKIFF_ASSIGN_OR_RETURN(v1::Instance done,
                           WaitForState(stub(), id, v1::EXITED, absl::Seconds(30)));
    if (done.exit().code() != 0) {
      return absl::InternalError(absl::StrCat(id, ": ", done.exit().ShortDebugString()));
    }
    return ReadLogs(stub(), id);
  }

  static LocalRegistry* registry_;
  std::unique_ptr<SkiffdProcess> skiffd_;
  HostState before_;
};

LocalRegistry* E2ETest::registry_ = nullptr;

TEST_F(E2ETest, BusyLoopGetsHalfACpuUnderAHalfVcpuLimit) {
  v1::InstanceSpec spec = ShellSpec("hello", "while :; do :; done");
  spec.set_vcpus_milli(500);
  SKIFF_ASSERT_OK(Create("busy", spec));
  ASSERT_TRUE(WaitForState(stub(), "busy", v1::STARTED, absl::Seconds(30)).ok());
  std::string usage = absl::StrCat("/sys/fs/cgroup/cpuacct/", skiffd_->options().cgroup_parent,
                                   "/busy/cpuacct.usage");
  absl::SleepFor(absl::Milliseconds(300));  // past start-up
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t u0, ReadCgroupCounter(usage));
  absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(3));
  SKIFF_ASSERT_OK_AND_ASSIGN(uint64_t u1, ReadCgroupCounter(usage));
  double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  double cpus = static_cast<double>(u1 - u0) / 1e9 / wall;
  EXPECT_NEAR(cpus, 0.5, 0.1) << "measured " << cpus << " CPUs over " << wall << " s";
  SKIFF_ASSERT_OK(Stop("busy"));
}

TEST_F(E2ETest, InstanceSeesOnlyItsOwnProcessesMountsAndInterfaces) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      std::string out,
      RunJob("iso", "hello",
             "echo PS; ps -o pid,comm | tail -n +2; echo MOUNTS; cat /proc/self/mountinfo; "
             "echo NET; ls /sys/class/net; echo HOST $(hostname)"));
  size_t mounts_at = out.find("MOUNTS\n"), net_at = out.find("NET\n");
  ASSERT_NE(mounts_at, std::string::npos) << out;
  ASSERT_NE(net_at, std::string::npos) << out;
  // Processes: the sandbox's init (PID 1), the shell and ps; nothing of the host.
  std::string ps = out.substr(3, mounts_at - 3);
  EXPECT_LE(std::count(ps.begin(), ps.end(), '\n'), 4) << ps;
  EXPECT_THAT(ps, HasSubstr("    1 "));
  EXPECT_THAT(ps, Not(HasSubstr("skiffd")));
  EXPECT_THAT(ps, Not(HasSubstr("e2e_test")));
  // Mounts: no host path (the state dir, the image store, the source tree).
  std::string mounts = out.substr(mounts_at, net_at - mounts_at);
  EXPECT_THAT(mounts, Not(HasSubstr(skiffd_->root())));
  EXPECT_THAT(mounts, Not(HasSubstr("/work")));
  EXPECT_THAT(mounts, Not(HasSubstr("/var/lib")));
  // Interfaces: exactly lo and eth0; the hostname is the instance id.
  EXPECT_EQ(out.substr(net_at), "NET\neth0\nlo\nHOST iso\n");
}

TEST_F(E2ETest, BlockedSyscallsFailAndOrdinaryWorkSucceeds) {
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string out,
                             RunJob("sys", "hello",
                                    "mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; "
                                    "unshare -n true 2>/dev/null; echo unshare=$?; "
                                    "swapoff -a 2>/dev/null; echo swapoff=$?; "
                                    "mknod /tmp/sda b 8 0 2>/dev/null; echo mknod=$?; "
                                    "echo data > /tmp/f && cat /tmp/f"));
  EXPECT_THAT(out, HasSubstr("mount=1\n"));
  EXPECT_THAT(out, HasSubstr("unshare=1\n"));
  EXPECT_THAT(out, HasSubstr("swapoff=1\n"));
  EXPECT_THAT(out, HasSubstr("mknod=1\n"));
  EXPECT_THAT(out, HasSubstr("data\n"));  // the writable layer works
}

// The multi-layer image's final tree (docs/images-examples.md), as the sandbox sees it:
// whiteouts and the opaque directory applied by overlayfs over the unpacked layers.
TEST_F(E2ETest, MultilayerImageTreeInsideTheSandbox) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      std::string out,
      RunJob("layers", "multilayer",
             "cd /; for d in data opaque hard links; do echo \"$d: $(ls -A $d | tr '\\n' ' ')\"; "
             "done; for f in data/keep.txt data/late.txt data/replaced.txt "
             "data/resurrected.txt opaque/new.txt hard/original.txt hard/second.txt; do "
             "echo \"$f=$(cat $f)\"; done; "
             "for l in relative absolute dangling; do echo \"$l->$(readlink links/$l)\"; done; "
             "[ $(stat -c %i hard/original.txt) = $(stat -c %i hard/link.txt) ] && echo hl1; "
             "[ $(stat -c %i hard/second.txt) = $(stat -c %i hard/second-link.txt) ] && echo hl2; "
             "cat links/relative; [ -e links/dangling ] || echo dangling-absent; "
             "ls -A data | grep -c wh; true"));
  EXPECT_THAT(out, HasSubstr("data: keep.txt late.txt replaced.txt resurrected.txt \n"));
  EXPECT_THAT(out, HasSubstr("opaque: new.txt \n"));
  EXPECT_THAT(out, HasSubstr("hard: link.txt original.txt second-link.txt second.txt \n"));
  EXPECT_THAT(out, HasSubstr("links: absolute dangling relative \n"));
  EXPECT_THAT(out, HasSubstr("data/keep.txt=keep v1\n"));
  EXPECT_THAT(out, HasSubstr("data/late.txt=late\n"));
  EXPECT_THAT(out, HasSubstr("data/replaced.txt=replaced v3\n"));
  EXPECT_THAT(out, HasSubstr("data/resurrected.txt=resurrected v5\n"));
  EXPECT_THAT(out, HasSubstr("opaque/new.txt=opaque new\n"));
  EXPECT_THAT(out, HasSubstr("hard/original.txt=hardlinked v1\n"));
  EXPECT_THAT(out, HasSubstr("hard/second.txt=hardlinked v5\n"));
  EXPECT_THAT(out, HasSubstr("relative->../data/keep.txt\n"));
  EXPECT_THAT(out, HasSubstr("absolute->/data/keep.txt\n"));
  EXPECT_THAT(out, HasSubstr("dangling->/data/deleted.txt\n"));
  EXPECT_THAT(out, HasSubstr("hl1\nhl2\nkeep v1\ndangling-absent\n0\n"));
}

TEST_F(E2ETest, WatchEventsDeliverTheWholeLifecycleInOrder) {
  grpc::ClientContext wctx;
  wctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::WatchEventsRequest wreq;
  wreq.set_instance_id("order");
  auto events = stub().WatchEvents(&wctx, wreq);
  // WatchEvents delivers from the moment the server registers the call.
  absl::SleepFor(absl::Milliseconds(200));

  SKIFF_ASSERT_OK(Create("order", ShellSpec("hello", "exec httpd -f -p $PORT -h /www", false)));
  ASSERT_TRUE(WaitForState(stub(), "order", v1::READY, absl::Seconds(30)).ok());
  SKIFF_ASSERT_OK(Stop("order", /*grace_s=*/5));

  std::vector<v1::Event::Type> types;
  uint64_t last_seq = 0;
  v1::Event ev;
  while (events->Read(&ev)) {
    EXPECT_EQ(ev.instance_id(), "order");
    EXPECT_GT(ev.sequence(), last_seq);
    last_seq = ev.sequence();
    types.push_back(ev.type());
    if (ev.type() == v1::Event::EXITED) {
      EXPECT_EQ(ev.exit().reason(), v1::STOPPED) << ev.ShortDebugString();
      break;
    }
  }
  wctx.TryCancel();
  std::vector<v1::Event::Type> want = {v1::Event::CREATED, v1::Event::STARTED, v1::Event::READY,
                                       v1::Event::STOPPING, v1::Event::EXITED};
  EXPECT_EQ(types, want);
}

}  // namespace
}  // namespace skiff::testing
