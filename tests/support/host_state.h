#pragma once

// A snapshot of the host state skiff could leak — mounts, skiff's cgroup directories,
// named network namespaces, network links, IPv4 main-table routes — and a diff that names what
// changed. Tests take one before and one after the code under test:
//
//   SKIFF_ASSERT_OK_AND_ASSIGN(HostState before, HostState::Capture());
//   ... create and tear down an instance ...
//   SKIFF_ASSERT_OK_AND_ASSIGN(HostState after, HostState::Capture());
//   EXPECT_EQ(DiffHostState(before, after), "");

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::testing {

struct HostStateOptions {
  // Cgroup subtrees to list, by first path component prefix under every hierarchy root
  // ("skiff" matches "skiff/…" and "skiff-test-42/…").
  std::vector<std::string> cgroup_prefixes = {"skiff"};
  // Where named network namespaces live (ip-netns convention).
  std::string netns_dir = "/run/netns";
  // Mount table to read.
  std::string mountinfo = "/proc/self/mountinfo";
};

struct HostState {
  // Each map counts identical entries (mounts can stack).
  std::map<std::string, int> mounts;   // "<mount point> <fstype> <source>"
  std::map<std::string, int> cgroups;  // absolute directory paths
  std::map<std::string, int> netns;    // names in netns_dir
  std::map<std::string, int> links;    // link names in the caller's netns
  // IPv4 main-table routes in the caller's netns: "<dst/len> <type>[ dev <link>]",
  // e.g. "10.88.0.0/16 unreachable" or "10.88.0.0/31 unicast dev sk-0a580000".
  std::map<std::string, int> routes;

  static absl::StatusOr<HostState> Capture(const HostStateOptions& options = {});
};

// One line per difference, e.g. "leaked cgroup: /sys/fs/cgroup/cpu/skiff/i-1",
// "removed mount: /x tmpfs tmpfs" or "leaked route: 10.88.0.0/16 unreachable"; empty when the
// states are equal.
std::string DiffHostState(const HostState& before, const HostState& after);

}  // namespace skiff::testing
