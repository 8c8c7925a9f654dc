#include "tests/support/host_state.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/net.h"
#include "sandbox/common/status.h"

namespace skiff::testing {
namespace {

// Subdirectory names of `dir` (no "." / ".."); NotFound if `dir` does not exist.
absl::StatusOr<std::vector<std::string>> SubDirs(const std::string& dir, bool any_type) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir(", dir, ")");
  std::vector<std::string> out;
  while (struct dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (any_type || e->d_type == DT_DIR) out.push_back(e->d_name);
  }
  closedir(d);
  return out;
}

void WalkCgroup(const std::string& dir, std::map<std::string, int>& out) {
  ++out[dir];
  absl::StatusOr<std::vector<std::string>> subs = SubDirs(dir, false);
  if (!subs.ok()) return;  // removed while walking
  for (const std::string& s : *subs) WalkCgroup(dir + "/" + s, out);
}

void DiffOne(const char* what, const std::map<std::string, int>& before,
             const std::map<std::string, int>& after, std::string& out) {
  for (const auto& [k, n] : after) {
    auto it = before.find(k);
    int was = it == before.end() ? 0 : it->second;
    for (int i = was; i < n; ++i) absl::StrAppend(&out, "leaked ", what, ": ", k, "\n");
  }
  for (const auto& [k, n] : before) {
    auto it = after.find(k);
    int now = it == after.end() ? 0 : it->second;
    for (int i = now; i < n; ++i) absl::StrAppend(&out, "removed ", what, ": ", k, "\n");
  }
}

}  // namespace

absl::StatusOr<HostState> HostState::Capture(const HostStateOptions& options) {
  HostState s;

  SKIFF_ASSIGN_OR_RETURN(std::string mountinfo, ReadFileToString(options.mountinfo, 16 << 20));
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto sep = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || sep == f.end() || f.end() - sep < 3) continue;
    ++s.mounts[absl::StrCat(f[4], " ", *(sep + 1), " ", *(sep + 2))];
  }

  SKIFF_ASSIGN_OR_RETURN(CgroupRoots roots, CgroupRoots::Detect());
  std::vector<std::string> hierarchies;
  for (const std::string* r :
       {&roots.unified, &roots.cpu, &roots.cpuacct, &roots.memory, &roots.pids, &roots.freezer}) {
    if (!r->empty() && std::find(hierarchies.begin(), hierarchies.end(), *r) == hierarchies.end()) {
      hierarchies.push_back(*r);
    }
  }
  for (const std::string& h : hierarchies) {
    SKIFF_ASSIGN_OR_RETURN(std::vector<std::string> top, SubDirs(h, false));
    for (const std::string& name : top) {
      for (const std::string& prefix : options.cgroup_prefixes) {
        if (absl::StartsWith(name, prefix)) {
          WalkCgroup(h + "/" + name, s.cgroups);
          break;
        }
      }
    }
  }

  absl::StatusOr<std::vector<std::string>> netns = SubDirs(options.netns_dir, true);
  if (netns.ok()) {
    for (const std::string& n : *netns) ++s.netns[n];
  } else if (!absl::IsNotFound(netns.status())) {
    return netns.status();
  }

  SKIFF_ASSIGN_OR_RETURN(std::vector<std::string> links, ListLinks());
  for (const std::string& l : links) ++s.links[l];

  SKIFF_ASSIGN_OR_RETURN(std::vector<RouteInfo> routes, ListRoutes());
  for (const RouteInfo& r : routes) {
    ++s.routes[absl::StrCat(r.dst, " ", r.type, r.dev.empty() ? "" : " dev ", r.dev)];
  }
  return s;
}

std::string DiffHostState(const HostState& before, const HostState& after) {
  std::string out;
  DiffOne("mount", before.mounts, after.mounts, out);
  DiffOne("cgroup", before.cgroups, after.cgroups, out);
  DiffOne("netns", before.netns, after.netns, out);
  DiffOne("link", before.links, after.links, out);
  DiffOne("route", before.routes, after.routes, out);
  return out;
}

}  // namespace skiff::testing
