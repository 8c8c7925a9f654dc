// The gen1 capability set, applied in forked root children (privileged): the sets are
// read back from /proc/<pid>/status before and after execve, and dropped capabilities
// are shown to fail.

#include "sandbox/gen1/capabilities.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/sandbox_common/child_process.h"
#include "tests/unit/sandbox_common/temp_dir.h"

namespace skiff::gen1 {
namespace {

using ::skiff::UniqueFd;
using ::skiff::testing::ExitCode;
using ::skiff::testing::RunInChild;
using ::skiff::testing::StatusIs;
using ::skiff::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t Bit(int c) { return uint64_t{1} << c; }

struct Caps {
  uint64_t inh = ~0ull, prm = ~0ull, eff = ~0ull, bnd = ~0ull, amb = ~0ull;
  int uid = -1;
};

Caps ParseStatus(const std::string& text) {
  Caps c;
  std::map<std::string, uint64_t*> fields = {{"CapInh", &c.inh},
                                             {"CapPrm", &c.prm},
                                             {"CapEff", &c.eff},
                                             {"CapBnd", &c.bnd},
                                             {"CapAmb", &c.amb}};
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<std::string> kv = absl::StrSplit(line, absl::ByAnyChar(":\t "), absl::SkipEmpty());
    if (kv.size() < 2) continue;
    if (auto it = fields.find(kv[0]); it != fields.end()) {
      absl::SimpleHexAtoi(kv[1], it->second);
    } else if (kv[0] == "Uid") {
      absl::SimpleAtoi(kv[1], &c.uid);
    }
  }
  return c;
}

// Runs `steps` (returning 0 or an errno) in a root child, then reports that child's
// /proc/self/status — read directly, or by an execve'd `busybox cat` if `exec`.
template <typename Steps>
Caps CapsAfter(Steps steps, bool exec) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  int st = RunInChild([&] {
    if (int err = steps()) return 100 + err;
    if (exec) {
      dup2(p[1], 1);
      const char* argv[] = {"busybox", "cat", "/proc/self/status", nullptr};
      execv("/bin/busybox", const_cast<char* const*>(argv));
      return 99;
    }
    char buf[4096];
    UniqueFd fd(open("/proc/self/status", O_RDONLY | O_CLOEXEC));
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n <= 0 || write(p[1], buf, static_cast<size_t>(n)) != n) return 98;
    return 0;
  });
  wr.Reset();
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(rd.get(), buf, sizeof(buf))) > 0;)
    text.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(ExitCode(st), 0) << "child wait status " << st;
  return ParseStatus(text);
}

class CapabilitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "privileged test: needs root";
    SKIFF_ASSERT_OK_AND_ASSIGN(caps_, PrepareDefaultCapabilities());
  }
  CapabilitySet caps_;
};

TEST_F(CapabilitiesTest, DefaultSetIsTheDocumentedOne) {
  EXPECT_THAT(caps_.Names(),
              ElementsAre("cap_chown", "cap_dac_override", "cap_fowner", "cap_fsetid", "cap_kill",
                          "cap_setgid", "cap_setuid", "cap_setpcap", "cap_net_bind_service",
                          "cap_sys_chroot", "cap_audit_write", "cap_setfcap"));
  EXPECT_FALSE(caps_.Has(CAP_NET_RAW));
  EXPECT_FALSE(caps_.Has(CAP_MKNOD));
  EXPECT_FALSE(caps_.Has(CAP_SYS_ADMIN));
  EXPECT_EQ(caps_.last_cap(), CAP_LAST_CAP);
}

TEST_F(CapabilitiesTest, FromNamesAcceptsLibcapSpellingsAndNamesTheBadOne) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      CapabilitySet s, CapabilitySet::FromNames({"CAP_CHOWN", "net_bind_service", "cap_kill"}));
  EXPECT_EQ(s.mask(), Bit(CAP_CHOWN) | Bit(CAP_NET_BIND_SERVICE) | Bit(CAP_KILL));
  EXPECT_THAT(CapabilitySet::FromNames({"chown", "CAP_BOGUS"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CAP_BOGUS")));
  EXPECT_THAT(CapabilitySet::FromNames({"cap_chown,cap_sys_admin"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CapabilitiesTest, UnpreparedSetIsRefused) {
  CapabilitySet empty;
  EXPECT_EQ(DropBoundingSet(empty), EINVAL);
  EXPECT_EQ(PrepareUidChange(empty), EINVAL);
  EXPECT_EQ(ApplyCapabilities(empty), EINVAL);
}

TEST_F(CapabilitiesTest, RootKeepsExactlyTheSetAcrossExecve) {
  const CapabilitySet& caps = caps_;
  auto steps = [&caps] {
    // Start from something to clear: an inheritable + ambient capability.
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0) return errno;
    data[0].inheritable |= Bit(CAP_NET_BIND_SERVICE);
    if (syscall(SYS_capset, &hdr, data) != 0) return errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0) return errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) != 1) return 90;
    if (int e = DropBoundingSet(caps)) return e;
    if (int e = PrepareUidChange(caps)) return e;
    return ApplyCapabilities(caps);
  };
  for (bool exec : {false, true}) {
    Caps c = CapsAfter(steps, exec);
    EXPECT_EQ(c.uid, 0) << exec;
    EXPECT_EQ(c.eff, caps_.mask()) << std::hex << c.eff << " exec=" << exec;
    EXPECT_EQ(c.prm, caps_.mask()) << std::hex << c.prm;
    EXPECT_EQ(c.bnd, caps_.mask()) << std::hex << c.bnd;
    EXPECT_EQ(c.inh, 0u);
    EXPECT_EQ(c.amb, 0u);
  }
}

TEST_F(CapabilitiesTest, NonRootUserEndsWithNoCapabilitiesButTheBoundingSet) {
  const CapabilitySet& caps = caps_;
  auto steps = [&caps] {
    if (int e = DropBoundingSet(caps)) return e;
    gid_t g = 65534;
    if (setgroups(1, &g) != 0 || setresgid(g, g, g) != 0) return errno;
    if (int e = PrepareUidChange(caps)) return e;
    if (setresuid(65534, 65534, 65534) != 0) return errno;
    return ApplyCapabilities(caps);
  };
  Caps before_exec = CapsAfter(steps, false);
  EXPECT_EQ(before_exec.uid, 65534);
  EXPECT_EQ(before_exec.eff, caps_.mask()) << std::hex << before_exec.eff;
  Caps after_exec = CapsAfter(steps, true);
  EXPECT_EQ(after_exec.uid, 65534);
  EXPECT_EQ(after_exec.eff, 0u);
  EXPECT_EQ(after_exec.prm, 0u);
  EXPECT_EQ(after_exec.bnd, caps_.mask());
  EXPECT_EQ(after_exec.amb, 0u);
}

TEST_F(CapabilitiesTest, DroppedCapabilitiesFailKeptOnesWork) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string file = tmp.path() + "/f", node = tmp.path() + "/null";
  ASSERT_TRUE(UniqueFd(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)).valid());
  const CapabilitySet& caps = caps_;
  auto apply = [&caps] {
    if (int e = DropBoundingSet(caps)) return e;
    return ApplyCapabilities(caps);
  };
  // Control: without the drop, root can make a device node.
  EXPECT_EQ(ExitCode(RunInChild([&] {
              int r = mknod(node.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0 ? 0 : errno;
              unlink(node.c_str());
              return r;
            })),
            0);
  EXPECT_EQ(ExitCode(RunInChild([&] {
              if (int e = apply()) return 100 + e;
              return mknod(node.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0 ? 0 : errno;
            })),
            EPERM);
  EXPECT_EQ(ExitCode(RunInChild([&] {
              if (int e = apply()) return 100 + e;
              return socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP) >= 0 ? 0 : errno;
            })),
            EPERM);
  EXPECT_EQ(ExitCode(RunInChild([&] {
              if (int e = apply()) return 100 + e;
              return sethostname("x", 1) == 0 ? 0 : errno;  // CAP_SYS_ADMIN
            })),
            EPERM);
  EXPECT_EQ(ExitCode(RunInChild([&] {
              if (int e = apply()) return 100 + e;
              return chown(file.c_str(), 1234, 1234) == 0 ? 0 : errno;  // CAP_CHOWN kept
            })),
            0);
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
}

}  // namespace
}  // namespace skiff::gen1
