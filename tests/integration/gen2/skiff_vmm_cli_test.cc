// skiff-vmm as a process: exit 0 when the guest resets (under its seccomp filter), the
// console to a file, every flag validated with a one-line error and exit 1; and the time
// from process start to the test guest's banner on serial (printed, for the benchmark).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "sandbox/gen2/testguest/testguest_paths.h"
#include "tests/integration/gen2/vmm_test_support.h"

namespace skiff::gen2 {
namespace {

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string Binary() {
  const char* dir = getenv("SKIFF_BUILD_DIR");
  return std::string(dir ? dir : ".") + "/sandbox/gen2/skiff-vmm";
}

Result RunVmm(const std::vector<std::string>& args) {
  testing::TempDir dir;
  std::string cmd = Binary();
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " >" + dir.File("out") + " 2>" + dir.File("err");
  const int status = system(cmd.c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = testing::ReadAll(dir.File("out"));
  r.err = testing::ReadAll(dir.File("err"));
  return r;
}

class SkiffVmmCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  }
  testing::TempDir dir_;
};

TEST_F(SkiffVmmCliTest, GuestResetExitsZero) {
  const Result r = RunVmm({"--kernel", testguest::kBzImagePath, "--cmdline", "testguest.mode=smp",
                           "--memory-mib", "64", "--vcpus", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tg: smp cpus=2 aps=1 up=1\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST_F(SkiffVmmCliTest, ConsoleToFileAndQuiet) {
  const std::string log = dir_.File("console.log");
  Result r = RunVmm(
      {"--kernel", testguest::kElfPath, "--memory-mib", "32", "--vcpus", "1", "--console", log});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(testing::ReadAll(log).find("tg: done\n"), std::string::npos);
  r = RunVmm({"--kernel", testguest::kElfPath, "--memory-mib", "32", "--vcpus", "1", "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(SkiffVmmCliTest, BadFlagsExitOneWithAClearError) {
  const std::string k = testguest::kBzImagePath;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--memory-mib", "64", "--vcpus", "1"}, "--kernel is required"},
      {{"--kernel", k, "--vcpus", "1"}, "--memory-mib is required"},
      {{"--kernel", k, "--memory-mib", "64"}, "--vcpus is required"},
      {{"--kernel", k, "--memory-mib", "8", "--vcpus", "1"}, "--memory-mib 8"},
      {{"--kernel", k, "--memory-mib", "lots", "--vcpus", "1"}, "--memory-mib lots"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "0"}, "--vcpus 0"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "9"}, "--vcpus 9"},
      {{"--kernel", "/nonexistent", "--memory-mib", "64", "--vcpus", "1"}, "/nonexistent"},
      {{"--kernel", k, "--initramfs", "/nonexistent-initrd", "--memory-mib", "64", "--vcpus", "1"},
       "/nonexistent-initrd"},
      {{"--kernel", "/etc/hostname", "--memory-mib", "64", "--vcpus", "1"}, "bzImage"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--bogus", "x"}, "unknown flag"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--console", "/nonexistent/dir/log"},
       "--console"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--disk", "/nonexistent.img"},
       "--disk /nonexistent.img"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--scratch-disk", "/nonexistent.img"},
       "--scratch-disk /nonexistent.img"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--mac", "52:54:00:00:00:01"},
       "--tap and --mac go together"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--tap", "t0", "--mac", "zz"},
       "MAC address zz"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--tap", "a-name-longer-than-15"},
       "--tap a-name-longer-than-15"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--control-socket",
        "/nonexistent.sock"},
       "connect(control socket /nonexistent.sock)"},
      {{"--kernel", k, "--memory-mib", "64", "--vcpus", "1", "--disk", k, "--disk", k},
       "given twice"},
      {{"--kernel"}, "missing value"},
  };
  for (const Case& c : cases) {
    const Result r = RunVmm(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.message;
    EXPECT_NE(r.err.find("skiff-vmm: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos)
        << "want '" << c.message << "' in " << r.err;
  }
}

// Process start → the banner on serial, through a pipe, for the boot benchmark. Prints the
// median of 9 runs; asserts only that the banner came.
TEST_F(SkiffVmmCliTest, TimeToBanner) {
  std::vector<double> ms;
  for (int i = 0; i < 9; ++i) {
    const std::string cmd = Binary() + " --kernel " + testguest::kBzImagePath +
                            " --memory-mib 64 --vcpus 1 --cmdline testguest.mode=";
    const auto start = std::chrono::steady_clock::now();
    FILE* p = popen(cmd.c_str(), "re");
    ASSERT_NE(p, nullptr);
    char line[512];
    bool seen = false;
    while (fgets(line, sizeof(line), p) != nullptr) {
      if (!seen && std::string(line).find("tg: skiff-testguest") != std::string::npos) {
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
        seen = true;
      }
    }
    EXPECT_EQ(pclose(p), 0);
    ASSERT_TRUE(seen);
  }
  std::sort(ms.begin(), ms.end());
  printf("skiff-vmm process start -> test guest banner: median %.1f ms (min %.1f, max %.1f)\n",
         ms[ms.size() / 2], ms.front(), ms.back());
}

}  // namespace
}  // namespace skiff::gen2
