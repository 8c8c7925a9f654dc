// The test guest under qemu-system-x86_64 -M microvm (KVM here, TCG where KVM is missing):
// both packagings boot through their own paths, and every mode does what its README says,
// checked from the host side (disk contents, the ARP reply, the control socket). This proves
// the guest independently of skiff's VMM, whose kvm tests then boot the same images.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/testguest/testguest_paths.h"
#include "tests/integration/gen2_testguest/qemu_guest.h"
#include "tests/integration/gen2_testguest/testguest_output.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::testguest {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr absl::Duration kBootTimeout = absl::Seconds(60);
constexpr uint64_t kSectorBytes = 512;
constexpr uint64_t kBlkBytes = 8 * kSectorBytes;  // the guest's default testguest.blk_sectors

struct Image {
  const char* name;
  const char* path;
  const char* entry;  // the banner's entry= under QEMU
};

class QemuTestGuest : public ::testing::TestWithParam<Image> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TempDir>> dir = TempDir::Create("skiff-testguest");
    SKIFF_ASSERT_OK(dir);
    dir_ = std::move(*dir);
  }

  std::string Path(const std::string& name) const { return dir_->path() + "/" + name; }

  QemuOptions Options(const std::string& append) const {
    QemuOptions o;
    o.kernel = GetParam().path;
    o.append = append;
    return o;
  }

  // Boots, waits for `tg: done`, stops QEMU; the report, with errors asserted empty.
  GuestReport Run(const QemuOptions& o) {
    absl::StatusOr<std::unique_ptr<QemuGuest>> qemu = QemuGuest::Start(o, dir_->path());
    EXPECT_THAT(qemu, skiff::testing::IsOk());
    if (!qemu.ok()) return {};
    absl::StatusOr<GuestReport> report = (*qemu)->WaitDone(kBootTimeout);
    EXPECT_THAT(report, skiff::testing::IsOk());
    if (!report.ok()) return {};
    EXPECT_EQ(report->entry, GetParam().entry);
    EXPECT_THAT(report->errors, IsEmpty()) << (*qemu)->Serial();
    return *report;
  }

  std::unique_ptr<TempDir> dir_;
};

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(std::random_device{}());
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_P(QemuTestGuest, BootsAndReportsTheBootFacts) {
  std::string initrd = RandomBytes(3001);
  SKIFF_ASSERT_OK(WriteNewFile(Path("initrd"), initrd));
  QemuOptions o = Options("testguest.probe=1 console=none");
  o.initrd = Path("initrd");
  o.memory_mib = 96;
  GuestReport r = Run(o);
  ASSERT_TRUE(r.done);
  EXPECT_THAT(r.cmdline, StartsWith("testguest.probe=1 console=none"));
  // RAM from 1 MiB to the end of the 96 MiB, whichever way the map was delivered (PVH
  // memmap, or the BIOS's e820 through the bzImage's real-mode setup).
  bool high_ram = std::any_of(r.e820.begin(), r.e820.end(), [](const E820Entry& e) {
    return e.type == 1 && e.addr <= 0x100000 && e.addr + e.size >= (96ull << 20) - (1 << 20);
  });
  EXPECT_TRUE(high_ram) << "no RAM entry covering 1 MiB..96 MiB among " << r.e820.size();
  EXPECT_EQ(r.initrd_size, initrd.size());
  EXPECT_GE(r.initrd_addr, 0x100000u);
}

TEST_P(QemuTestGuest, SmpStartsEveryAp) {
  QemuOptions o = Options("testguest.mode=smp");
  o.vcpus = 3;
  GuestReport r = Run(o);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bsp_apic_id, 0u);
  std::vector<uint32_t> up = r.aps_up;
  std::sort(up.begin(), up.end());
  EXPECT_THAT(up, ElementsAre(1u, 2u));
}

TEST_P(QemuTestGuest, BlkReadsTheRootDiskAndWritesTheScratchDisk) {
  std::string root = RandomBytes(64 << 10);
  SKIFF_ASSERT_OK(WriteNewFile(Path("root.img"), root));
  SKIFF_ASSERT_OK(WriteNewFile(Path("scratch.img"), std::string(1 << 20, '\0')));
  QemuOptions o = Options("testguest.mode=blk");
  o.device_args = {
      "-drive",  "file=" + Path("root.img") + ",if=none,id=root,format=raw,readonly=on",
      "-device", "virtio-blk-device,drive=root",
      "-drive",  "file=" + Path("scratch.img") + ",if=none,id=scratch,format=raw",
      "-device", "virtio-blk-device,drive=scratch"};
  GuestReport r = Run(o);
  ASSERT_TRUE(r.done);
  ASSERT_TRUE(r.root_fnv1a.has_value());
  EXPECT_EQ(r.root_sectors_read, kBlkBytes / kSectorBytes);
  EXPECT_EQ(*r.root_fnv1a, Fnv1a32(std::string_view(root).substr(0, kBlkBytes)));
  EXPECT_TRUE(r.root_read_only);
  EXPECT_EQ(r.scratch_readback_ok, true);
  absl::StatusOr<std::string> scratch = ReadFileToString(Path("scratch.img"), 2 << 20);
  SKIFF_ASSERT_OK(scratch);
  EXPECT_EQ(scratch->substr(0, kBlkBytes), ScratchPattern(kBlkBytes));
  EXPECT_EQ(scratch->substr(kBlkBytes), std::string(scratch->size() - kBlkBytes, '\0'));
}

TEST_P(QemuTestGuest, NetSendsArpAndReceivesTheReply) {
  // QEMU's user network answers the guest's "who-has 10.0.2.2" on its own.
  QemuOptions o = Options("testguest.mode=net testguest.ip=10.0.2.15 testguest.peer=10.0.2.2");
  o.device_args = {"-netdev", "user,id=n0,restrict=on", "-device",
                   "virtio-net-device,netdev=n0,mac=52:54:00:ab:cd:ef"};
  GuestReport r = Run(o);
  ASSERT_TRUE(r.done);
  const std::string mac("\x52\x54\x00\xab\xcd\xef", 6);
  ASSERT_GE(r.net_rx_frame.size(), 42u) << "no frame received";
  const std::string& f = r.net_rx_frame;
  EXPECT_EQ(f.substr(0, 6), mac);          // to the MAC the guest read from the device config
  EXPECT_EQ(f.substr(12, 2), "\x08\x06");  // ARP
  EXPECT_EQ(f.substr(20, 2), std::string("\x00\x02", 2));          // reply
  EXPECT_EQ(f.substr(28, 4), std::string("\x0a\x00\x02\x02", 4));  // from 10.0.2.2
  EXPECT_EQ(f.substr(32, 6), mac);
  EXPECT_EQ(f.substr(38, 4), std::string("\x0a\x00\x02\x0f", 4));  // to 10.0.2.15
}

// Reads from `fd` until a newline (returned without it), or fails after `timeout_ms`.
absl::StatusOr<std::string> ReadLine(int fd, int timeout_ms) {
  std::string line;
  for (;;) {
    pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0) return absl::DeadlineExceededError(absl::StrCat("no line; have '", line, "'"));
    char c;
    ssize_t got = read(fd, &c, 1);
    if (got <= 0) return absl::UnavailableError(absl::StrCat("EOF; have '", line, "'"));
    if (c == '\n') return line;
    line.push_back(c);
  }
}

TEST_P(QemuTestGuest, ControlWritesAndEchoesALine) {
  // The test listens; QEMU's chardev connects to it as it starts.
  std::string sock_path = Path("control.sock");
  UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.valid()) << strerror(errno);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << strerror(errno);
  ASSERT_EQ(listen(listener.get(), 1), 0) << strerror(errno);

  QemuOptions o = Options("testguest.mode=control");
  o.device_args = {"-chardev", "socket,id=c0,path=" + sock_path + ",server=off",
                   "-device",  "virtio-serial-device,max_ports=1",
                   "-device",  "virtconsole,chardev=c0"};
  absl::StatusOr<std::unique_ptr<QemuGuest>> qemu = QemuGuest::Start(o, dir_->path());
  SKIFF_ASSERT_OK(qemu);
  pollfd p = {listener.get(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 30000), 1) << "QEMU did not connect; " << (*qemu)->QemuLog();
  UniqueFd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn.valid()) << strerror(errno);

  absl::StatusOr<std::string> hello = ReadLine(conn.get(), 60000);
  SKIFF_ASSERT_OK(hello) << (*qemu)->Serial();
  EXPECT_EQ(*hello, "tg-control hello");
  std::string token = absl::StrCat("echo-", std::random_device{}());
  std::string sent = token + "\n";
  ASSERT_EQ(write(conn.get(), sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));
  absl::StatusOr<std::string> echo = ReadLine(conn.get(), 60000);
  SKIFF_ASSERT_OK(echo) << (*qemu)->Serial();
  EXPECT_EQ(*echo, token);

  absl::StatusOr<GuestReport> r = (*qemu)->WaitDone(kBootTimeout);
  SKIFF_ASSERT_OK(r);
  EXPECT_EQ(r->control_rx, token);
  EXPECT_THAT(r->errors, IsEmpty());
}

TEST_P(QemuTestGuest, GarbageDescriptorsBreakTheDevice) {
  SKIFF_ASSERT_OK(WriteNewFile(Path("disk.img"), std::string(64 << 10, '\0')));
  QemuOptions o = Options("testguest.mode=garbage");
  o.device_args = {"-drive", "file=" + Path("disk.img") + ",if=none,id=d,format=raw", "-device",
                   "virtio-blk-device,drive=d"};
  GuestReport r = Run(o);
  ASSERT_TRUE(r.done);
  std::vector<std::string> cases;
  for (const GarbageCase& c : r.garbage_broken) {
    cases.push_back(c.name);
    EXPECT_NE(c.status & 0x40, 0u) << c.name;  // DEVICE_NEEDS_RESET
  }
  EXPECT_THAT(cases, ElementsAre("head-out-of-range", "next-out-of-range", "loop", "outside-ram"));
  EXPECT_TRUE(r.garbage_device_broken);
}

TEST_P(QemuTestGuest, AllModesInOneBoot) {
  SKIFF_ASSERT_OK(WriteNewFile(Path("root.img"), RandomBytes(16 << 10)));
  SKIFF_ASSERT_OK(WriteNewFile(Path("scratch.img"), std::string(16 << 10, '\0')));
  QemuOptions o = Options("testguest.mode=smp,blk testguest.mode=net,garbage");
  o.vcpus = 2;
  o.device_args = {
      "-drive",  "file=" + Path("root.img") + ",if=none,id=root,format=raw,readonly=on",
      "-device", "virtio-blk-device,drive=root",
      "-drive",  "file=" + Path("scratch.img") + ",if=none,id=scratch,format=raw",
      "-device", "virtio-blk-device,drive=scratch",
      "-netdev", "user,id=n0,restrict=on",
      "-device", "virtio-net-device,netdev=n0"};
  GuestReport r = Run(o);
  ASSERT_TRUE(r.done);
  EXPECT_THAT(r.aps_up, ElementsAre(1u));
  EXPECT_TRUE(r.root_fnv1a.has_value());
  EXPECT_EQ(r.scratch_readback_ok, true);
  EXPECT_GE(r.net_rx_frame.size(), 42u);
  EXPECT_TRUE(r.garbage_device_broken);
}

INSTANTIATE_TEST_SUITE_P(Images, QemuTestGuest,
                         ::testing::Values(Image{"elf", kElfPath, "pvh"},
                                           Image{"bzImage", kBzImagePath, "linux32"}),
                         [](const ::testing::TestParamInfo<Image>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace skiff::gen2::testguest
