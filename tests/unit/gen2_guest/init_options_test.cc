// skiff-init's flags: the guest's PID 1 takes none, test mode takes --test, --control and
// --test-network (which makes sense only in test mode).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sandbox/gen2/guest/init/options.h"

namespace skiff::gen2::init {
namespace {

struct Parsed {
  bool ok = false;
  Options options;
  std::string error;
};

Parsed Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "skiff-init");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  Parsed p;
  p.ok = ParseOptions(static_cast<int>(argv.size()), argv.data(), &p.options, &p.error);
  return p;
}

TEST(InitOptionsTest, AsPidOneLeftoverKernelWordsAreIgnored) {
  Parsed p = Parse({"quiet", "console=ttyS0"});
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_FALSE(p.options.test_mode);
  EXPECT_FALSE(p.options.test_network);
  EXPECT_EQ(p.options.control_path, "/dev/hvc0");
}

TEST(InitOptionsTest, TestModeWithASocketOrAnFd) {
  Parsed p = Parse({"--test", "--control=unix:/run/c.sock"});
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_TRUE(p.options.test_mode);
  EXPECT_FALSE(p.options.test_network);
  EXPECT_TRUE(p.options.control_is_socket);
  EXPECT_EQ(p.options.control_path, "/run/c.sock");
  p = Parse({"--test", "--control=fd:3"});
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.options.control_fd, 3);
}

TEST(InitOptionsTest, TestNetworkOnlyInTestMode) {
  Parsed p = Parse({"--test", "--test-network", "--control=fd:4"});
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_TRUE(p.options.test_network);
  p = Parse({"--test-network", "--control=fd:4"});
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("--test-network needs --test"), std::string::npos) << p.error;
}

TEST(InitOptionsTest, MalformedFlagsAreNamed) {
  Parsed p = Parse({"--test", "--control=fd:x"});
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("bad fd x"), std::string::npos) << p.error;
  p = Parse({"--test", "--control=tcp:1"});
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("expected unix:PATH or fd:N"), std::string::npos) << p.error;
  p = Parse({"--tset"});
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("unknown flag --tset"), std::string::npos) << p.error;
}

}  // namespace
}  // namespace skiff::gen2::init
