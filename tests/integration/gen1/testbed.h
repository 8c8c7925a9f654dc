#pragma once

// Shared by the gen1 and shim integration tests: a busybox root filesystem in a temp
// dir, unique names for cgroups/veths/addresses, and a host snapshot that names what an
// instance leaked (mounts, cgroup dirs, links, processes, files).

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/host_state.h"

namespace skiff::testbed {

// mkdtemp under /tmp; removed recursively (it never holds mounts) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `content` to `path` (mode 0644 or `mode`), creating parent dirs.
void WriteTestFile(const std::string& path, const std::string& content, int mode = 0644);
std::string ReadTestFile(const std::string& path);
bool PathExists(const std::string& path);

// A read-only lower dir: /bin/busybox plus a symlink per applet in /bin, the usual
// empty top-level dirs, and /www/index.html (for httpd tests).
void BuildBusyboxRootfs(const std::string& dir);

// Per-test unique names, so parallel or crashed runs do not collide.
struct InstanceNames {
  std::string id;           // "t<pid>-<n>"
  std::string cgroup_path;  // "skiff-gen1-test-<pid>/<id>"
  std::string host_veth;    // "skt<pid hex><n>", <= 15 chars
  std::string host_ip;      // 10.201.x.y (even)
  std::string instance_ip;  // host_ip + 1
  std::string marker;       // value of SKIFF_TEST_MARKER in the instance's env
};
InstanceNames UniqueNames();
// Removes the per-process parent cgroup dirs ("skiff-gen1-test-<pid>") if empty.
void RemoveTestCgroupParents();

// What the host looks like; Leaks() lists what appeared since Take() (empty = clean).
class HostSnapshot {
 public:
  static HostSnapshot Take();
  std::vector<std::string> Leaks(const InstanceNames& names,
                                 const std::vector<std::string>& paths_gone) const;

 private:
  std::vector<std::string> mounts_;
};

// The shared HostState snapshot (tests/support/host_state.h), restricted to what these
// tests create ("skiff-gen1-test-*" cgroups), and its diff reduced to "leaked ..." lines
// (and, for links, to ours, "skt*"): other suites running concurrently on a dev machine
// add and remove their own things.
::skiff::testing::HostStateOptions HostStateOptionsForTests();
std::string LeakedLines(const std::string& diff);

// Pids whose environment holds SKIFF_TEST_MARKER=<marker>.
std::vector<pid_t> ProcessesWithMarker(const std::string& marker);

// HTTP GET http://ip:port/path from the host; returns the whole response or "" on error.
std::string HttpGet(const std::string& ip, uint16_t port, const std::string& path);

// Private_Clean + Private_Dirty from /proc/<pid>/smaps_rollup, in bytes (-1 on error).
int64_t PrivateBytes(pid_t pid);
// One field ("Shared_Dirty", "Pss", ...) of /proc/<pid>/smaps_rollup, in bytes (-1).
int64_t SmapsRollupBytes(pid_t pid, const std::string& field);

}  // namespace skiff::testbed
