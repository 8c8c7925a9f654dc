// gen2 end to end with a real guest: skiffd → skiff-shim → skiff-vmm (our VMM) → the minimal
// guest kernel → skiff-init → the `hello` image's httpd, answering curl on the instance's IP.
//
// Needs hardware virtualization (KVM on VMX or SVM). It skips, saying why, on hosts without
// it — among them this project's CI machines, whose /dev/kvm is PVM (kvm_pvm: guest ring 0
// is emulated, Linux does not reach init). What can be checked without booting is checked
// there by other tests: the kernel and initramfs builds (gen2_guest_kernel_test), the root
// image (gen2_root_image_test), skiff-init as PID 1 (gen2_skiff_init_pid1_test) and as a
// process on the control channel (gen2_agent_test, through skiffd), the boot parameters the
// VMM writes (gen2_vmm_boot_test), and a real boot of the same kernel and initramfs under
// QEMU's emulator (gen2_guest_qemu_boot_test).
//
// The kernel: $SKIFF_GUEST_KERNEL, else scripts/guest-kernel.sh --minimal (cached).

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "sandbox/common/status.h"
#include "sandbox/gen2/guest/initramfs.h"
#include "tests/support/host_state.h"
#include "tests/support/registry.h"
#include "tests/support/shell.h"
#include "tests/support/skiffd_process.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Why Linux guests cannot run under KVM here, or "" if they can.
std::string MissingHardwareVirtualization() {
  if (!Exists("/dev/kvm")) return "no /dev/kvm";
  if (Exists("/sys/module/kvm_pvm")) {
    return "/dev/kvm is PVM (kvm_pvm: no VMX/SVM; guest ring 0 is emulated and Linux does not "
           "reach init) — this test needs hardware virtualization";
  }
  if (!Exists("/sys/module/kvm_intel") && !Exists("/sys/module/kvm_amd")) {
    return "neither kvm_intel nor kvm_amd is loaded: no hardware virtualization";
  }
  return "";
}

std::string GuestKernel() {
  if (const char* k = getenv("SKIFF_GUEST_KERNEL"); k != nullptr && *k != '\0') return k;
  const std::string out = Shell(SourceDir() + "/scripts/guest-kernel.sh --minimal");
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::StartsWith(line, "kernel=")) return std::string(line.substr(7));
  }
  return "";
}

// What both cases need: hardware virtualization (else a skip saying why), the minimal
// guest kernel, an initramfs with skiff-init, a registry with `images`, and skiffd with
// gen2 configured (and its ingress, if asked); TearDown deletes everything and checks the
// host is as before.
class Gen2LinuxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = MissingHardwareVirtualization(); !why.empty()) GTEST_SKIP() << why;
    kernel_ = GuestKernel();
    ASSERT_FALSE(kernel_.empty()) << "scripts/guest-kernel.sh --minimal printed no kernel=";
    char tmpl[] = "/tmp/skiff-gen2-linux.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    initramfs_ = dir_ + "/initramfs.cpio";
    SKIFF_ASSERT_OK(gen2::guest::BuildInitramfs({SKIFF_INIT_PATH, "", ""}, initramfs_));
  }

  void StartSkiffd(const std::vector<std::string>& images, bool ingress) {
    SKIFF_ASSERT_OK_AND_ASSIGN(registry_, LocalRegistry::Start());
    for (const std::string& image : images) {
      SKIFF_ASSERT_OK(image == "testapp" ? registry_->PushTestApp()
                                         : registry_->PushExampleImages({image}));
    }
    SkiffdOptions opts;
    opts.insecure_registries = {registry_->address()};
    opts.ingress = ingress;
    opts.extra_flags = {"--gen2-kernel=" + kernel_, "--gen2-initramfs=" + initramfs_};
    SKIFF_ASSERT_OK_AND_ASSIGN(skiffd_, SkiffdProcess::Create(opts));
    host_.cgroup_prefixes = {skiffd_->options().cgroup_parent};
    SKIFF_ASSERT_OK_AND_ASSIGN(before_, HostState::Capture(host_));
    SKIFF_ASSERT_OK(skiffd_->Start());
  }

  void TearDown() override {
    if (skiffd_ != nullptr) {
      if (skiffd_->running()) {
        SKIFF_EXPECT_OK(skiffd_->DeleteAll());
      }
      SKIFF_EXPECT_OK(skiffd_->Stop());
      skiffd_->RemoveCgroupParent();
      absl::StatusOr<HostState> after = HostState::Capture(host_);
      ASSERT_TRUE(after.ok()) << after.status();
      EXPECT_EQ(DiffHostState(before_, *after), "") << "left behind on the host";
      skiffd_.reset();
    }
    registry_.reset();
    if (!dir_.empty()) Shell("rm -rf '" + dir_ + "'");
  }

  std::string kernel_, dir_, initramfs_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<SkiffdProcess> skiffd_;
  HostStateOptions host_;
  HostState before_;
};

TEST_F(Gen2LinuxTest, HelloInAMicroVmAnswersCurlAndStopsCleanly) {
  ASSERT_NO_FATAL_FAILURE(StartSkiffd({"hello"}, /*ingress=*/false));
  SkiffdProcess* skiffd = skiffd_.get();

  v1::InstanceSpec spec;
  spec.set_image(registry_->Reference("hello"));
  spec.set_generation(v1::GEN2);
  spec.set_memory_bytes(256 << 20);
  spec.set_vcpus_milli(1000);
  const absl::Time t0 = absl::Now();
  {
    grpc::ClientContext ctx;
    v1::CreateInstanceRequest req;
    req.set_instance_id("g2-linux-hello");
    *req.mutable_spec() = spec;
    v1::Instance out;
    SKIFF_ASSERT_OK(FromGrpc(skiffd->stub().CreateInstance(&ctx, req, &out), "CreateInstance"));
  }
  absl::StatusOr<v1::Instance> ready =
      WaitForState(skiffd->stub(), "g2-linux-hello", v1::READY, absl::Seconds(60));
  ASSERT_TRUE(ready.ok())
      << ready.status() << "\nserial.log:\n"
      << RunShell("cat " + skiffd->state_dir() + "/instances/g2-linux-hello/serial.log").output;
  std::printf("gen2 linux: CreateInstance -> Ready %.1f ms\n",
              absl::ToDoubleMilliseconds(absl::Now() - t0));
  // Shell() fails the test unless curl exits 0 (-f: an HTTP error is a failure too).
  const std::string body =
      Shell(absl::StrCat("curl -fsS --max-time 10 http://", ready->ip(), ":", ready->port(), "/"));
  EXPECT_FALSE(body.empty());
  {
    grpc::ClientContext ctx;
    v1::StopInstanceRequest req;
    req.set_instance_id("g2-linux-hello");
    v1::Instance out;
    SKIFF_ASSERT_OK(FromGrpc(skiffd->stub().StopInstance(&ctx, req, &out), "StopInstance"));
  }
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Instance done, WaitForState(skiffd->stub(), "g2-linux-hello",
                                                             v1::EXITED, absl::Seconds(30)));
  EXPECT_EQ(done.exit().reason(), v1::STOPPED) << done.exit().ShortDebugString();
}

// A service of gen2 instances behind the ingress: the request reaches the guest's app over
// the tap and virtio-net, and the microVM's cgroup (the VMM's threads) gets its CPU only
// while a request is in flight. On this project's CI machines the same cases run through
// fake-vmm (ingress_e2e_gen2_test); this one runs them against the real VMM and guest.
TEST_F(Gen2LinuxTest, AServiceOfMicroVmsIsServedThroughTheIngressWithCpuOnlyDuringRequests) {
  ASSERT_NO_FATAL_FAILURE(StartSkiffd({"testapp"}, /*ingress=*/true));
  SkiffdProcess* skiffd = skiffd_.get();

  v1::Service service;
  service.set_name("vm");
  v1::InstanceSpec& spec = *service.mutable_template_();
  spec.set_image(registry_->Reference("testapp"));
  spec.set_generation(v1::GEN2);
  spec.set_memory_bytes(256 << 20);
  spec.set_vcpus_milli(1000);
  (*spec.mutable_env())["BUSY_THREAD"] = "1";
  service.set_min_instances(1);
  service.set_max_instances(1);
  {
    grpc::ClientContext ctx;
    v1::PutServiceRequest req;
    *req.mutable_service() = service;
    v1::Service out;
    SKIFF_ASSERT_OK(FromGrpc(skiffd->stub().PutService(&ctx, req, &out), "PutService"));
  }
  std::string id;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (id.empty() && absl::Now() < deadline) {
    grpc::ClientContext ctx;
    v1::ListInstancesRequest req;
    req.set_label_selector("skiff.service=vm");
    v1::ListInstancesResponse list;
    if (skiffd->stub().ListInstances(&ctx, req, &list).ok()) {
      for (const auto& i : list.instances()) {
        if (i.state() == v1::READY) id = i.id();
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE(id.empty()) << "no READY instance of service vm within 90 s";

  const std::string url = absl::StrCat("http://127.0.0.1:", skiffd->ingress_port());
  EXPECT_EQ(Shell("curl -fsS --max-time 10 -H 'Host: vm.skiff.test' " + url + "/"), "ok\n");
  // CPU from the cgroup's own counter: the guest's busy thread while idle (the floor) and
  // with a request in flight (the full vCPU).
  const std::string usage = absl::StrCat("/sys/fs/cgroup/cpuacct/", skiffd->options().cgroup_parent,
                                         "/", id, "/cpuacct.usage");
  auto cpu_over = [&](absl::Duration window) {
    auto read = [&] {
      std::ifstream in(usage);
      uint64_t v = 0;
      in >> v;
      return v;
    };
    const uint64_t u0 = read();
    const absl::Time t0 = absl::Now();
    absl::SleepFor(window);
    return static_cast<double>(read() - u0) / 1e9 / absl::ToDoubleSeconds(absl::Now() - t0);
  };
  absl::SleepFor(absl::Milliseconds(500));
  const double idle = cpu_over(absl::Seconds(2));
  std::string slow;
  std::thread request([&] {
    slow = Shell("curl -fsS --max-time 10 -H 'Host: vm.skiff.test' " + url + "/sleep?ms=1600");
  });
  absl::SleepFor(absl::Milliseconds(200));
  const double busy = cpu_over(absl::Seconds(1));
  request.join();
  std::printf("gen2 linux behind the ingress: busy guest's CPU idle %.3f, request in flight %.3f\n",
              idle, busy);
  EXPECT_LE(idle, 0.03);
  EXPECT_GE(busy, 0.8);
  EXPECT_FALSE(slow.empty());
}

}  // namespace
}  // namespace skiff::testing
