// The shim's control packets and state files.

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/common/unique_fd.h"
#include "shim/client.h"
#include "shim/config.h"
#include "shim/packet.h"
#include "shim/state_files.h"
#include "skiff/v1/shim.pb.h"
#include "tests/support/status_matchers.h"

namespace skiff::shim {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-shim-unit-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const char* f : {kStatusFile, "status.pb.tmp", "x"}) unlink((dir_ + "/" + f).c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST(PacketTest, RoundTripsOneMessagePerPacket) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  v1::shim::Request stop;
  stop.mutable_stop()->set_has_grace(true);
  stop.mutable_stop()->set_grace_ms(1234);
  v1::shim::Request get;
  get.mutable_get_status();
  SKIFF_ASSERT_OK(SendPacket(a.get(), stop));
  SKIFF_ASSERT_OK(SendPacket(a.get(), get));
  v1::shim::Request got;
  SKIFF_ASSERT_OK(RecvPacket(b.get(), got));
  EXPECT_EQ(got.stop().grace_ms(), 1234u);
  SKIFF_ASSERT_OK(RecvPacket(b.get(), got));
  EXPECT_TRUE(got.has_get_status());
  a.Reset();
  EXPECT_THAT(RecvPacket(b.get(), got), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(PacketTest, GarbageAndOversizedPacketsAreRejected) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int sndbuf = 1 << 20;
  setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  setsockopt(b.get(), SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
  const char garbage[] = "\xff\xff\xff\xff\xff";
  ASSERT_EQ(send(a.get(), garbage, 5, 0), 5);
  v1::shim::Request got;
  EXPECT_THAT(RecvPacket(b.get(), got), StatusIs(absl::StatusCode::kDataLoss));
  std::string big(kMaxPacketBytes + 100, 'a');
  ASSERT_EQ(send(a.get(), big.data(), big.size(), 0), static_cast<ssize_t>(big.size()));
  EXPECT_THAT(RecvPacket(b.get(), got), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(TempDirTest, StatusFileIsReplacedAtomically) {
  EXPECT_THAT(ReadStatusFile(dir_), StatusIs(absl::StatusCode::kNotFound));
  v1::shim::ShimStatus st;
  st.set_state(v1::shim::RUNNING);
  st.set_pid(42);
  SKIFF_ASSERT_OK(WriteMessageAtomically(dir_ + "/" + kStatusFile, st));
  st.set_state(v1::shim::EXITED);
  st.set_exit_reason(2);
  SKIFF_ASSERT_OK(WriteMessageAtomically(dir_ + "/" + kStatusFile, st));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus read, ReadStatusFile(dir_));
  EXPECT_EQ(read.state(), v1::shim::EXITED);
  EXPECT_EQ(read.pid(), 42);
  EXPECT_EQ(read.exit_reason(), 2);
  struct stat sb;
  EXPECT_NE(lstat((dir_ + "/status.pb.tmp").c_str(), &sb), 0) << "no temp file left";
}

TEST_F(TempDirTest, CorruptStatusFileIsDataLoss) {
  SKIFF_ASSERT_OK(WriteFileAtomically(dir_ + "/" + kStatusFile, std::string("\xff\xff\xff", 3)));
  EXPECT_THAT(ReadStatusFile(dir_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("status.pb")));
}

TEST_F(TempDirTest, ConnectWithoutShimIsUnavailable) {
  EXPECT_THAT(ShimClient::Connect(dir_), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(TempDirTest, CancelUnblocksASubscribeInAnotherThread) {
  // A fake shim: answers the Subscribe, then never pushes anything.
  std::string path = dir_ + "/" + kSocketFile;
  UniqueFd listener(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.get(), 1), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client, ShimClient::Connect(dir_));
  UniqueFd server(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server.valid());

  std::atomic<int> statuses{0};
  absl::Status result;
  std::thread subscriber(
      [&] { result = client->Subscribe([&](const v1::shim::ShimStatus&) { ++statuses; }); });
  v1::shim::Request request;
  SKIFF_ASSERT_OK(RecvPacket(server.get(), request));
  EXPECT_TRUE(request.has_subscribe());
  v1::shim::Response response;
  response.set_ok(true);
  response.mutable_status()->set_state(v1::shim::RUNNING);
  SKIFF_ASSERT_OK(SendPacket(server.get(), response));
  while (statuses.load() == 0) usleep(1000);
  client->Cancel();
  subscriber.join();
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(statuses.load(), 1);
  unlink(path.c_str());
}

TEST(ShimConfigTest, ValidatesAndConverts) {
  v1::shim::ShimConfig c;
  c.set_instance_id("i-1");
  c.set_state_dir("/run/skiff/i-1");
  c.set_generation(1);
  c.set_cgroup_path("skiff/i-1");
  c.set_port(8080);
  c.add_argv("/bin/app");
  c.add_lower_dirs("/layers/a");
  c.add_lower_dirs("/layers/b");
  c.set_memory_bytes(1 << 30);
  c.set_host_veth("sk-1");
  c.set_instance_ip("10.0.0.1");
  SKIFF_EXPECT_OK(ValidateShimConfig(c));
  gen1::SandboxSpec s = ToSandboxSpec(c, 5, 6);
  EXPECT_EQ(s.hostname, "i-1") << "hostname defaults to the instance id";
  EXPECT_EQ(s.run_dir, "/run/skiff/i-1");
  EXPECT_EQ(s.lower_dirs, (std::vector<std::string>{"/layers/a", "/layers/b"}));
  EXPECT_EQ(s.limits.vcpus_milli, 1000u) << "0 means one vCPU";
  EXPECT_EQ(s.limits.memory_bytes, 1u << 30);
  EXPECT_EQ(s.veth.prefix_len, 31u);
  EXPECT_EQ(s.stdout_fd, 5);
  EXPECT_EQ(s.stderr_fd, 6);

  v1::shim::ShimConfig bad = c;
  bad.set_generation(2);
  EXPECT_THAT(ValidateShimConfig(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kernel_path")))
      << "gen2 needs the VMM and the guest's boot files";
  bad.mutable_gen2()->set_vmm_path("/usr/lib/skiff/skiff-vmm");
  bad.mutable_gen2()->set_kernel_path("/var/cache/skiff/vmlinuz");
  bad.mutable_gen2()->set_initramfs_path("/var/cache/skiff/initramfs");
  SKIFF_EXPECT_OK(ValidateShimConfig(bad));
  gen2::Gen2SandboxSpec g = ToGen2SandboxSpec(bad, "nameserver 10.0.0.2\n");
  EXPECT_EQ(g.hostname, "i-1");
  EXPECT_EQ(g.vcpus_milli, 1000u);
  EXPECT_EQ(g.memory_bytes, 1u << 30);
  EXPECT_EQ(g.kernel_path, "/var/cache/skiff/vmlinuz");
  EXPECT_EQ(g.host_resolv_conf, "nameserver 10.0.0.2\n");
  bad = c;
  bad.set_generation(7);
  EXPECT_THAT(ValidateShimConfig(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("generation")));
  bad = c;
  bad.set_state_dir("relative");
  EXPECT_THAT(ValidateShimConfig(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state_dir")));
  bad = c;
  bad.set_termination_grace_ms(3600 * 1000 + 1);
  EXPECT_THAT(ValidateShimConfig(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("termination_grace_ms")));
  bad = c;
  bad.set_port(70000);
  EXPECT_THAT(ValidateShimConfig(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
  bad = c;
  bad.clear_cgroup_path();
  EXPECT_THAT(ValidateShimConfig(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cgroup_path")));
}

}  // namespace
}  // namespace skiff::shim
