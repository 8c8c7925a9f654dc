// gen2 through the real skiffd + skiff-shim + docker-registry. On this project's CI
// machines /dev/kvm is PVM and cannot boot Linux, so the VMM is fake-vmm: it checks what
// the shim prepared for the microVM (arguments, the erofs root image, the addressed tap, its
// own cgroup) and runs the real skiff-init in test mode on the control socket. Everything
// on the host side of gen2 is real: the API, the shim, the root image build, the cgroup, the
// tap, the control protocol, output, exit codes, SIGTERM forwarding, errors, clean-up.
// The full path with a real guest kernel is tests/integration/gen2_linux (kvm-linux).

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sandbox/common/status.h"
#include "tests/support/host_state.h"
#include "tests/support/registry.h"
#include "tests/support/skiffd_process.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1024 * 1024;

class Gen2AgentTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = reg->release();
    absl::Status s = registry_->PushExampleImages({"hello"});
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

  void StartSkiffd(bool gen2) {
    SkiffdOptions opts;
    opts.insecure_registries = {registry_->address()};
    if (gen2) {
      // Any readable files do for the kernel and initramfs: fake-vmm only checks them.
      opts.extra_flags = {absl::StrCat("--gen2-vmm=", SKIFF_FAKE_VMM),
                          absl::StrCat("--gen2-kernel=", SKIFF_TESTGUEST_KERNEL),
                          absl::StrCat("--gen2-initramfs=", SKIFF_TESTGUEST_KERNEL)};
    }
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
    skiffd_->RemoveCgroupParent();
    auto after = HostState::Capture(HostOptions());
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(DiffHostState(before_, *after), "") << "left behind on the host";
    skiffd_.reset();
  }

  v1::Agent::Stub& stub() { return skiffd_->stub(); }

  v1::InstanceSpec Gen2Job(const std::string& script) {
    v1::InstanceSpec spec;
    spec.set_image(registry_->Reference("hello"));
    spec.set_generation(v1::GEN2);
    spec.set_kind(v1::JOB);
    spec.set_memory_bytes(128 * kMiB);
    spec.set_vcpus_milli(1000);
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

  static LocalRegistry* registry_;
  std::unique_ptr<SkiffdProcess> skiffd_;
  HostState before_;
};

LocalRegistry* Gen2AgentTest::registry_ = nullptr;

TEST_F(Gen2AgentTest, Gen2IsRefusedWhenSkiffdHasNoGuestKernel) {
  StartSkiffd(false);
  absl::Status s = Create("g2-refused", Gen2Job("exit 0"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("--gen2-kernel"));
}

TEST_F(Gen2AgentTest, JobRunsWithItsOutputAndExitCodeReported) {
  StartSkiffd(true);
  SKIFF_ASSERT_OK(Create("g2-job", Gen2Job("echo gen2-out; echo gen2-err >&2; exit 7")));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance done,
                             WaitForState(stub(), "g2-job", v1::EXITED, absl::Seconds(60)));
  EXPECT_EQ(done.exit().code(), 7) << done.exit().ShortDebugString();
  EXPECT_EQ(done.exit().reason(), v1::COMPLETED) << done.exit().ShortDebugString();
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string logs, ReadLogs(stub(), "g2-job", LogFormat::kTagged));
  EXPECT_THAT(logs, HasSubstr("out:gen2-out"));
  EXPECT_THAT(logs, HasSubstr("err:gen2-err"));
}

TEST_F(Gen2AgentTest, StopForwardsSigtermThroughTheControlChannel) {
  StartSkiffd(true);
  SKIFF_ASSERT_OK(
      Create("g2-stop",
             Gen2Job("trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.05; done")));
  SKIFF_ASSERT_OK(WaitForState(stub(), "g2-stop", v1::STARTED, absl::Seconds(30)).status());
  // Give skiff-init time to have started the shell and its trap.
  const absl::Time wait_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < wait_up) {
    absl::StatusOr<std::string> logs = ReadLogs(stub(), "g2-stop", LogFormat::kTagged);
    if (logs.ok() && logs->find("out:up") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Time t0 = absl::Now();
  grpc::ClientContext ctx;
  v1::StopInstanceRequest req;
  req.set_instance_id("g2-stop");
  req.mutable_grace()->set_seconds(10);
  v1::Instance out;
  SKIFF_ASSERT_OK(FromGrpc(stub().StopInstance(&ctx, req, &out), "StopInstance"));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance done,
                             WaitForState(stub(), "g2-stop", v1::EXITED, absl::Seconds(30)));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5)) << "SIGTERM should end it, not the grace period";
  EXPECT_EQ(done.exit().reason(), v1::STOPPED) << done.exit().ShortDebugString();
  EXPECT_EQ(done.exit().code(), 0) << done.exit().ShortDebugString();
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string logs, ReadLogs(stub(), "g2-stop", LogFormat::kTagged));
  EXPECT_THAT(logs, HasSubstr("out:got-term"));
}

TEST_F(Gen2AgentTest, AnEntrypointThatCannotStartIsReportedAsStartFailed) {
  StartSkiffd(true);
  v1::InstanceSpec spec = Gen2Job("");
  spec.clear_command();
  spec.clear_args();
  spec.add_command("/nonexistent/app");
  SKIFF_ASSERT_OK(Create("g2-bad", spec));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance done,
                             WaitForState(stub(), "g2-bad", v1::EXITED, absl::Seconds(60)));
  EXPECT_EQ(done.exit().reason(), v1::START_FAILED) << done.exit().ShortDebugString();
  EXPECT_THAT(done.exit().message(), HasSubstr("skiff-init"));
}

}  // namespace
}  // namespace skiff::testing
