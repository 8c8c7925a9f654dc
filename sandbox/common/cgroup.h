#pragma once

// One interface over cgroup v1 and v2. The version is detected at runtime from the
// mounted hierarchies; a CgroupRoots built by hand points the same code at a directory
// that mimics cgroup2's files (that is how v2 is unit-tested on v1 hosts).
//
// Never unmounts or reconfigures a host hierarchy: skiff only creates, fills and
// removes its own child groups below them.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/common/unique_fd.h"

namespace skiff {

enum class CgroupVersion { kV1, kV2 };

// Where the hierarchies are mounted.
struct CgroupRoots {
  CgroupVersion version = CgroupVersion::kV2;
  // v2: the unified mount (e.g. /sys/fs/cgroup).
  std::string unified;
  // v1: one mount per controller (e.g. /sys/fs/cgroup/cpu,cpuacct → cpu and cpuacct).
  std::string cpu;
  std::string cpuacct;
  std::string memory;
  std::string pids;
  std::string freezer;

  // Tests only: called after Create() makes a group directory and before it touches any
  // file in it, so a fake cgroup2 tree can provide the files the kernel would create.
  std::function<absl::Status(const std::string& dir)> after_mkdir_for_testing;

  // Reads /proc/self/mountinfo: v2 if a cgroup2 mount carries the cpu and memory
  // controllers, else v1 if cpu and memory v1 hierarchies exist, else an error.
  static absl::StatusOr<CgroupRoots> Detect();
  static absl::StatusOr<CgroupRoots> DetectFrom(const std::string& mountinfo_path);
};

struct CgroupLimits {
  // → cpu.max "quota period" / cpu.cfs_quota_us, and the weight under contention:
  //   cpu.shares 1024 per vCPU (v1), cpu.weight mapped from those shares (v2).
  uint32_t vcpus_milli = 1000;
  uint64_t memory_bytes = 0;  // → memory.max / memory.limit_in_bytes (0 = unlimited)
  uint32_t pids_max = 0;      // → pids.max (0 = unlimited)
  uint64_t cpu_period_us = 100000;
};

// An open handle on a group's CPU quota: one write() changes it. Kept by skiffd per
// instance so request-based CPU throttling costs one syscall. Never writes "max"/-1
// (that re-patches kernel code on every CPU); unthrottled is a finite quota.
class CpuQuota {
 public:
  CpuQuota(UniqueFd fd, CgroupVersion version, uint64_t period_us)
      : fd_(std::move(fd)), version_(version), period_us_(period_us) {}
  // quota_us per period_us; writes "Q P" (v2) or "Q" (v1) at offset 0.
  absl::Status Set(uint64_t quota_us);
  uint64_t period_us() const { return period_us_; }

 private:
  UniqueFd fd_;
  CgroupVersion version_;
  uint64_t period_us_;
};

// A skiff-owned cgroup, e.g. relative path "skiff/i-42" under each hierarchy.
class Cgroup {
 public:
  // Creates the group (mkdir in every hierarchy; parents as needed; enables the
  // cpu/memory/pids controllers in parents' cgroup.subtree_control on v2) and applies
  // the limits. AlreadyExists if it exists. On failure nothing is left behind.
  static absl::StatusOr<std::unique_ptr<Cgroup>> Create(const CgroupRoots& roots,
                                                        const std::string& rel_path,
                                                        const CgroupLimits& limits);
  // Opens an existing group (agent restart, stop of a running instance).
  static absl::StatusOr<std::unique_ptr<Cgroup>> Open(const CgroupRoots& roots,
                                                      const std::string& rel_path);

  ~Cgroup() = default;  // does not remove the group: call Destroy()

  CgroupVersion version() const;
  const std::string& rel_path() const;

  // Moves a process (all its threads) into the group in every hierarchy.
  absl::Status AddProcess(pid_t pid);
  // Members of the group (cgroup.procs).
  absl::StatusOr<std::vector<pid_t>> Procs() const;
  // SIGKILLs every process in the group (v2: cgroup.kill when present; otherwise, and
  // on v1, freeze → kill each pid → thaw, repeated until empty), then waits until
  // cgroup.procs is empty or `timeout_ms` passes.
  absl::Status KillAll(int timeout_ms = 2000);
  // True once the kernel OOM-killed something in the group (memory.events oom_kill
  // on v2; memory.oom_control oom_kill on v1).
  absl::StatusOr<bool> OomKilled() const;
  // Total CPU time consumed by the group (cpu.stat usage_usec / cpuacct.usage).
  absl::StatusOr<uint64_t> CpuUsageNs() const;
  // Opens the quota file for later one-write updates.
  absl::StatusOr<CpuQuota> OpenCpuQuota() const;
  // Removes the group from every hierarchy (must be empty; FailedPrecondition names the
  // directory otherwise). Already gone is OK. Parent directories (e.g. "skiff") are
  // shared between groups and stay.
  absl::Status Destroy();

 private:
  Cgroup() = default;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace skiff
