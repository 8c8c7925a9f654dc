#include "sandbox/gen1/etc_files.h"

#include "gtest/gtest.h"
#include "sandbox/gen1/child_error.h"

namespace skiff::gen1 {
namespace {

TEST(EtcFilesTest, HostsNameTheInstance) {
  EXPECT_EQ(HostsFileContent("i-42", "10.201.0.1"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.201.0.1\ti-42\n");
  EXPECT_EQ(HostsFileContent("i-42", ""),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  EXPECT_EQ(HostnameFileContent("i-42"), "i-42\n");
}

TEST(EtcFilesTest, ResolvConfDropsLoopbackNameserversAndNoise) {
  EXPECT_EQ(ResolvConfContent("# comment\nnameserver 127.0.0.53\nnameserver ::1\n"
                              "nameserver 192.0.2.53\n  search example.com corp\n"
                              "options ndots:2\nsortlist 1.2.3.4\nnameserver\n"),
            "nameserver 192.0.2.53\nsearch example.com corp\noptions ndots:2\n");
  EXPECT_EQ(ResolvConfContent(""), "");
}

TEST(ChildErrorTest, EveryStepHasAName) {
  for (int s = static_cast<int>(ChildStep::kNone); s <= static_cast<int>(ChildStep::kExecve); ++s) {
    EXPECT_STRNE(ChildStepName(static_cast<ChildStep>(s)), "unknown step") << s;
  }
  EXPECT_STREQ(ChildStepName(ChildStep::kExecve), "execve");
  EXPECT_EQ(sizeof(ChildError), 12u) << "fixed-size record on the error pipe";
}

}  // namespace
}  // namespace skiff::gen1
