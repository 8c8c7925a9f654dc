#pragma once

// What a gen1 sandbox is built from. Plain data, filled by the shim from its ShimConfig;
// validated by Gen1Sandbox::Start (every field is hostile input).

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/common/cgroup.h"
#include "sandbox/common/net.h"

namespace skiff::gen1 {

struct SandboxSpec {
  std::string instance_id;
  std::string hostname;  // = instance id; <= 64 chars
  // Host directory the sandbox may use for its own files; it creates <run_dir>/rootfs
  // (an empty mount point, only ever mounted on inside the instance's mount namespace)
  // and removes it on Destroy.
  std::string run_dir;

  // Root filesystem: read-only layer dirs, topmost first.
  std::vector<std::string> lower_dirs;

  // Process.
  std::vector<std::string> argv;  // argv[0]: absolute path, or a name looked up in PATH
  std::vector<std::string> env;   // "K=V"
  std::string working_dir;        // absolute; "" = "/"
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;

  // Resources. limits.memory_bytes also sizes the writable tmpfs layer.
  std::string cgroup_path;  // relative to each hierarchy's root, e.g. "skiff/i-42"
  CgroupLimits limits;

  // Network. An empty veth.host_ifname means: no veth, loopback only.
  VethConfig veth;

  // The app's stdio (the sandbox dups them; the caller keeps ownership). -1 = /dev/null.
  int stdout_fd = -1;
  int stderr_fd = -1;
};

}  // namespace skiff::gen1
