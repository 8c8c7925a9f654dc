// The VMM booting real guests on /dev/kvm, in process (seccomp off here; see
// vmm_seccomp_test.cc): the project's test guest as a bzImage and as an ELF (banner, the
// command line and zero page it parsed, 2 vCPUs both running, the initramfs), the tiny
// hand-made guests (reset, host stop, triple fault), malformed kernels refused with a clear
// error and nothing leaked, and every fd and mapping released when a Vmm goes away.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_format.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/testguest/testguest_paths.h"
#include "sandbox/gen2/vmm/layout.h"
#include "sandbox/gen2/vmm/vmm.h"
#include "tests/integration/gen2/tiny_guest.h"
#include "tests/integration/gen2/vmm_test_support.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;
using testing::TinyProgram;

class VmmBootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
    console_path_ = dir_.File("console.log");
    console_.Reset(open(console_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(console_.valid());
  }

  VmmConfig Config(const std::string& kernel, const std::string& cmdline, uint32_t vcpus = 1) {
    VmmConfig c;
    c.kernel_path = kernel;
    c.cmdline = cmdline;
    c.memory_bytes = 64ull << 20;
    c.vcpus = vcpus;
    c.console_fd = console_.get();
    c.seccomp = false;
    return c;
  }

  // Runs to the end, stopping the VM after `timeout` if the guest has not ended it.
  VmExit RunWithTimeout(Vmm& vmm, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (!done && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!done) vmm.Stop();
    });
    VmExit exit = vmm.Run();
    done = true;
    watchdog.join();
    return exit;
  }

  std::string Console() { return testing::ReadAll(console_path_); }

  std::string Kernel(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = dir_.File(name);
    testing::WriteBytes(path, bytes);
    return path;
  }

  testing::TempDir dir_;
  std::string console_path_;
  UniqueFd console_;
};

TEST_F(VmmBootTest, TestGuestBzImageBootsAndSeesItsCmdlineAndE820) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      auto vmm, Vmm::Create(Config(testguest::kBzImagePath, "testguest.mode= hello=world")));
  const VmExit exit = RunWithTimeout(*vmm);
  EXPECT_EQ(exit.end, VmEnd::kReset) << exit.status;
  const std::string out = Console();
  EXPECT_THAT(out, HasSubstr("tg: skiff-testguest entry=linux64\n"));
  EXPECT_THAT(out, HasSubstr("tg: cmdline=testguest.mode= hello=world\n"));
  EXPECT_THAT(out, HasSubstr("tg: e820 addr=0x0 size=0x9fc00 type=1\n"));
  EXPECT_THAT(out, HasSubstr("tg: e820 addr=0x9fc00 size=0x60400 type=2\n"));
  EXPECT_THAT(out, HasSubstr("tg: e820 addr=0x100000 size=0x3f00000 type=1\n"));
  EXPECT_THAT(out, HasSubstr("tg: initrd addr=0x0 size=0x0\n"));
  EXPECT_THAT(out, HasSubstr("tg: done\n"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("tg: error")));
}

TEST_F(VmmBootTest, TestGuestElfBoots) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(Config(testguest::kElfPath, "elf=1")));
  const VmExit exit = RunWithTimeout(*vmm);
  EXPECT_EQ(exit.end, VmEnd::kReset) << exit.status;
  const std::string out = Console();
  EXPECT_THAT(out, HasSubstr("tg: skiff-testguest entry=linux64\n"));
  EXPECT_THAT(out, HasSubstr("tg: cmdline=elf=1\n"));
  EXPECT_THAT(out, HasSubstr("tg: done\n"));
}

TEST_F(VmmBootTest, TwoVcpusBothRun) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm,
                             Vmm::Create(Config(testguest::kBzImagePath, "testguest.mode=smp", 2)));
  const VmExit exit = RunWithTimeout(*vmm);
  EXPECT_EQ(exit.end, VmEnd::kReset) << exit.status;
  const std::string out = Console();
  EXPECT_THAT(out, HasSubstr("cpus=2 lapic=0xfee00000"));
  EXPECT_THAT(out, HasSubstr("tg: cpu 0 bsp\n"));
  EXPECT_THAT(out, HasSubstr("tg: cpu 1 up\n"));  // printed by the AP itself
  EXPECT_THAT(out, HasSubstr("tg: smp cpus=2 aps=1 up=1\n"));
}

TEST_F(VmmBootTest, InitramfsIsPlacedAndReported) {
  std::vector<uint8_t> initrd(10000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i * 7);
  const std::string initrd_path = dir_.File("initrd");
  testing::WriteBytes(initrd_path, initrd);
  VmmConfig config = Config(testguest::kBzImagePath, "");
  config.initramfs_path = initrd_path;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(std::move(config)));
  const VmExit exit = RunWithTimeout(*vmm);
  EXPECT_EQ(exit.end, VmEnd::kReset) << exit.status;
  // The top of RAM, page aligned: 64 MiB - 12 KiB.
  const uint64_t addr = (64ull << 20) - 3 * 4096;
  EXPECT_THAT(Console(),
              HasSubstr(absl::StrFormat("tg: initrd addr=%#x size=%#x\n", addr, initrd.size())));
  std::vector<uint8_t> in_guest(initrd.size());
  SKIFF_ASSERT_OK(vmm->memory().Read(addr, in_guest.data(), in_guest.size()));
  EXPECT_EQ(in_guest, initrd);
}

// A device that only exists, to see the slot announced on the command line.
class IdleDevice : public virtio::VirtioDevice {
 public:
  const char* name() const override { return "idle"; }
  uint32_t device_type() const override { return 2; }
  uint64_t offered_features() const override { return 1ull << 32; }
  std::span<const uint16_t> queue_max_sizes() const override { return sizes_; }
  void ReadConfig(uint64_t, std::span<uint8_t> data) override {
    std::fill(data.begin(), data.end(), 0);
  }
  void WriteConfig(uint64_t, std::span<const uint8_t>) override {}
  absl::Status Activate(uint64_t, std::vector<virtio::Queue>, virtio::VirtioInterrupt*) override {
    return absl::OkStatus();
  }
  void Notify(uint32_t) override {}
  void Reset() override {}

 private:
  const uint16_t sizes_[1] = {8};
};

TEST_F(VmmBootTest, VirtioSlotsAreAnnouncedOnTheCmdline) {
  VmmConfig config = Config(testguest::kBzImagePath, "base");
  for (uint32_t slot : {layout::kSlotBlock, layout::kSlotScratch}) {
    config.virtio.push_back({slot, [](EventLoop*, const GuestMemory&) {
                               return absl::StatusOr<std::shared_ptr<virtio::VirtioDevice>>(
                                   std::make_shared<IdleDevice>());
                             }});
  }
  SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(std::move(config)));
  EXPECT_EQ(vmm->cmdline(),
            "base virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0003000:8");
  EXPECT_NE(vmm->virtio_transport(layout::kSlotBlock), nullptr);
  EXPECT_EQ(vmm->virtio_transport(layout::kSlotNet), nullptr);
  const VmExit exit = RunWithTimeout(*vmm);
  EXPECT_EQ(exit.end, VmEnd::kReset) << exit.status;
  EXPECT_THAT(Console(), HasSubstr("tg: cmdline=" + vmm->cmdline() + "\n"));
}

TEST_F(VmmBootTest, TinyBzImageAndElfPrintTheCmdlineAndReset) {
  for (const auto& kernel : {Kernel("tiny.bz", testing::TinyBzImage(TinyProgram::kPrintCmdline)),
                             Kernel("tiny.elf", testing::TinyElf(TinyProgram::kPrintCmdline))}) {
    ASSERT_EQ(ftruncate(console_.get(), 0), 0);
    ASSERT_EQ(lseek(console_.get(), 0, SEEK_SET), 0);
    SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(Config(kernel, "tiny says hi")));
    const VmExit exit = RunWithTimeout(*vmm);
    EXPECT_EQ(exit.end, VmEnd::kReset) << kernel << ": " << exit.status;
    EXPECT_EQ(Console(), "tiny says hi\n") << kernel;
    EXPECT_EQ(vmm->serial().bytes_transmitted(), 13u);
  }
}

TEST_F(VmmBootTest, QuietDropsConsoleOutput) {
  VmmConfig config =
      Config(Kernel("tiny.bz", testing::TinyBzImage(TinyProgram::kPrintCmdline)), "quiet please");
  config.quiet = true;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(std::move(config)));
  EXPECT_EQ(RunWithTimeout(*vmm).end, VmEnd::kReset);
  EXPECT_EQ(Console(), "");
  EXPECT_EQ(vmm->serial().bytes_transmitted(), 13u);
}

TEST_F(VmmBootTest, HostStopEndsASpinningGuest) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      auto vmm,
      Vmm::Create(Config(Kernel("spin.bz", testing::TinyBzImage(TinyProgram::kSpin)), "", 2)));
  const auto start = std::chrono::steady_clock::now();
  const VmExit exit = RunWithTimeout(*vmm, std::chrono::seconds(1));
  EXPECT_EQ(exit.end, VmEnd::kStopped);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // A second Run is refused.
  EXPECT_EQ(vmm->Run().end, VmEnd::kError);
}

TEST_F(VmmBootTest, TripleFaultEndsTheVm) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      auto vmm,
      Vmm::Create(Config(Kernel("tf.bz", testing::TinyBzImage(TinyProgram::kTripleFault)), "")));
  EXPECT_EQ(RunWithTimeout(*vmm).end, VmEnd::kShutdown);
}

TEST_F(VmmBootTest, MalformedKernelsRefusedWithoutLeaks) {
  std::vector<uint8_t> bad_magic = testing::TinyBzImage(TinyProgram::kPrintCmdline);
  bad_magic[0x202] = 'X';
  std::vector<uint8_t> truncated = testing::TinyBzImage(TinyProgram::kPrintCmdline);
  truncated.resize(0x300);
  std::vector<uint8_t> huge_setup = testing::TinyBzImage(TinyProgram::kPrintCmdline);
  huge_setup[0x1f1] = 0xff;
  std::vector<uint8_t> outside = testing::TinyElf(TinyProgram::kPrintCmdline);
  const uint64_t far = 1ull << 30;                 // 1 GiB, beyond 64 MiB of RAM
  std::memcpy(outside.data() + 64 + 24, &far, 8);  // p_paddr
  std::memcpy(outside.data() + 24, &far, 8);       // e_entry
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string message;
  };
  const Case cases[] = {
      {"bad-magic", bad_magic, "neither ELF nor a valid bzImage"},
      {"truncated", truncated, "past the file's end"},
      {"huge-setup-sects", huge_setup, "setup_sects 255"},
      {"segment-outside-memory", outside, "outside guest memory"},
      {"empty", {}, "too short"},
  };
  // One good run first, so lazily created process state (thread stacks, the kick handler)
  // does not count as a leak.
  {
    SKIFF_ASSERT_OK_AND_ASSIGN(
        auto vmm,
        Vmm::Create(Config(Kernel("ok", testing::TinyBzImage(TinyProgram::kPrintCmdline)), "")));
    RunWithTimeout(*vmm);
  }
  const size_t fds = testing::CountOpenFds();
  const size_t maps = testing::CountMappings();
  for (const Case& c : cases) {
    const std::string path = Kernel(c.name, c.bytes);
    EXPECT_THAT(Vmm::Create(Config(path, "")),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(HasSubstr(path), HasSubstr(c.message))))
        << c.name;
  }
  EXPECT_EQ(testing::CountOpenFds(), fds);
  EXPECT_EQ(testing::CountMappings(), maps);
  EXPECT_EQ(testing::CountMappingsOfSize(64ull << 20), 0u);
}

TEST_F(VmmBootTest, BadConfigRefused) {
  EXPECT_THAT(Vmm::Create(Config(dir_.File("missing"), "")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  VmmConfig c = Config(testguest::kBzImagePath, "");
  c.vcpus = 9;
  EXPECT_THAT(Vmm::Create(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vcpus 9")));
  c = Config(testguest::kBzImagePath, "");
  c.memory_bytes = (16ull << 20) + 4096;
  EXPECT_THAT(Vmm::Create(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("memory")));
  c = Config(testguest::kBzImagePath, std::string(5000, 'x'));
  EXPECT_THAT(Vmm::Create(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("command line")));
}

TEST_F(VmmBootTest, MemoryAndFdsReleasedOnExit) {
  const std::string kernel = testguest::kBzImagePath;
  // Warm-up: glibc caches thread stacks, the kick handler is installed once.
  {
    SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(Config(kernel, "testguest.mode=smp", 2)));
    RunWithTimeout(*vmm);
  }
  const size_t fds = testing::CountOpenFds();
  const size_t maps = testing::CountMappings();
  {
    SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(Config(kernel, "testguest.mode=smp", 2)));
    EXPECT_EQ(testing::CountMappingsOfSize(64ull << 20), 1u);  // the guest's RAM
    EXPECT_GT(testing::CountOpenFds(), fds);                   // kvm, vm, vcpus, irqfds, epoll
    EXPECT_EQ(RunWithTimeout(*vmm).end, VmEnd::kReset);
  }
  EXPECT_EQ(testing::CountOpenFds(), fds);
  EXPECT_EQ(testing::CountMappings(), maps);
  EXPECT_EQ(testing::CountMappingsOfSize(64ull << 20), 0u);
  // A Vmm that is built and never run releases everything too.
  { SKIFF_ASSERT_OK_AND_ASSIGN(auto vmm, Vmm::Create(Config(kernel, "", 2))); }
  EXPECT_EQ(testing::CountOpenFds(), fds);
  EXPECT_EQ(testing::CountMappings(), maps);
}

TEST(KvmTest, IrqchipInterruptsBothWays) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  SKIFF_ASSERT_OK_AND_ASSIGN(Kvm kvm, Kvm::Open());
  SKIFF_ASSERT_OK(kvm.CheckCapabilities());
  SKIFF_ASSERT_OK_AND_ASSIGN(Vm vm, kvm.CreateVm());
  // Without an irqchip there is nothing to raise a line on.
  EXPECT_FALSE(vm.IrqLine(layout::kCom1Irq, true).ok());
  SKIFF_ASSERT_OK(vm.CreateIrqchip());
  IrqLineInterrupt line(&vm, layout::kCom1Irq);
  line.Trigger();
  EXPECT_EQ(line.failures(), 0u);
  SKIFF_ASSERT_OK_AND_ASSIGN(UniqueFd fd, vm.CreateIrqfd(layout::VirtioIrq(0)));
  IrqfdInterrupt irqfd(std::move(fd));
  for (int i = 0; i < 3; ++i) irqfd.Trigger();
  EXPECT_EQ(irqfd.failures(), 0u);
  SKIFF_ASSERT_OK_AND_ASSIGN(std::vector<kvm_cpuid_entry2> cpuid, kvm.SupportedCpuid());
  bool kvm_signature = false;
  for (const auto& e : cpuid) kvm_signature |= e.function == 0x40000000;
  EXPECT_TRUE(kvm_signature) << "KVM's paravirt leaves (kvmclock) are offered";
}

}  // namespace
}  // namespace skiff::gen2
