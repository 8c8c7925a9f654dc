#pragma once

// A skiff-shim under test: launched from the build tree with a busybox rootfs, unique
// cgroup/veth/addresses, and a host leak check when the test ends.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "shim/client.h"
#include "skiff/v1/shim.pb.h"
#include "tests/integration/gen1/testbed.h"
#include "tests/support/host_state.h"

namespace skiff::shim {

// skiff.v1.ExitReason numbers.
inline constexpr int kCompleted = 1;
inline constexpr int kStopped = 2;
inline constexpr int kKilled = 3;
inline constexpr int kOomKilled = 4;
inline constexpr int kStartupProbeFailed = 5;
inline constexpr int kStartFailed = 6;

struct ConsoleRecord {
  std::string timestamp, stream, tag, text;
};

class ShimTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string ShimBinary() const;
  v1::shim::ShimConfig Config(std::vector<std::string> argv, bool is_job);
  // Waits until status.pb says EXITED and the shim process is gone.
  absl::StatusOr<v1::shim::ShimStatus> WaitExited(absl::Duration timeout);
  // Waits until console.log holds a record whose text is `text`.
  bool WaitForConsole(const std::string& text, absl::Duration timeout);
  std::vector<ConsoleRecord> Console() const;
  pid_t ShimPid() const;
  static bool ProcessAlive(pid_t pid);

  testbed::InstanceNames names_;
  testbed::TempDir rootfs_{"skiff-shim-rootfs"};
  testbed::TempDir state_{"skiff-shim-state"};
  testbed::HostSnapshot before_;
  ::skiff::testing::HostState host_before_;
};

}  // namespace skiff::shim
