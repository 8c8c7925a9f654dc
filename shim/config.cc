#include "shim/config.h"

#include "absl/strings/str_cat.h"

namespace skiff::shim {

namespace {
constexpr uint64_t kMaxGraceMs = 3600 * 1000;
}  // namespace

absl::Status ValidateShimConfig(const v1::shim::ShimConfig& c) {
  if (c.generation() < 0 || c.generation() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("generation (", c.generation(), "): want 1 or 2"));
  }
  if (c.generation() == 2 && (c.gen2().vmm_path().empty() || c.gen2().kernel_path().empty() ||
                              c.gen2().initramfs_path().empty())) {
    return absl::InvalidArgumentError(
        "gen2: vmm_path, kernel_path and initramfs_path are required for generation 2");
  }
  if (c.instance_id().empty()) return absl::InvalidArgumentError("instance_id: empty");
  if (c.state_dir().empty() || c.state_dir()[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("state_dir (", c.state_dir(), "): not an absolute path"));
  }
  if (c.termination_grace_ms() > kMaxGraceMs) {
    return absl::InvalidArgumentError(
        absl::StrCat("termination_grace_ms (", c.termination_grace_ms(), "): max 3600000"));
  }
  if (!c.is_job() && c.port() > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port (", c.port(), "): want 1..65535"));
  }
  if (c.cgroup_path().empty()) return absl::InvalidArgumentError("cgroup_path: empty");
  // The sandbox validates the rest (paths, argv, env, network) and names the field.
  return absl::OkStatus();
}

gen1::SandboxSpec ToSandboxSpec(const v1::shim::ShimConfig& c, int stdout_fd, int stderr_fd) {
  gen1::SandboxSpec s;
  s.instance_id = c.instance_id();
  s.hostname = c.hostname().empty() ? c.instance_id() : c.hostname();
  s.run_dir = c.state_dir();
  s.lower_dirs.assign(c.lower_dirs().begin(), c.lower_dirs().end());
  s.argv.assign(c.argv().begin(), c.argv().end());
  s.env.assign(c.env().begin(), c.env().end());
  s.working_dir = c.working_dir();
  s.uid = c.uid();
  s.gid = c.gid();
  s.additional_gids.assign(c.additional_gids().begin(), c.additional_gids().end());
  s.cgroup_path = c.cgroup_path();
  s.limits.vcpus_milli = c.vcpus_milli() == 0 ? 1000 : c.vcpus_milli();
  s.limits.memory_bytes = c.memory_bytes();
  s.limits.pids_max = c.pids_limit();
  s.veth.host_ifname = c.host_veth();
  s.veth.host_ip = c.host_ip();
  s.veth.instance_ip = c.instance_ip();
  s.veth.prefix_len = c.prefix_len() == 0 ? 31 : c.prefix_len();
  s.stdout_fd = stdout_fd;
  s.stderr_fd = stderr_fd;
  return s;
}

}  // namespace skiff::shim

namespace skiff::shim {

gen2::Gen2SandboxSpec ToGen2SandboxSpec(const v1::shim::ShimConfig& c,
                                        const std::string& host_resolv_conf) {
  gen2::Gen2SandboxSpec s;
  s.instance_id = c.instance_id();
  s.hostname = c.hostname().empty() ? c.instance_id() : c.hostname();
  s.run_dir = c.state_dir();
  s.lower_dirs.assign(c.lower_dirs().begin(), c.lower_dirs().end());
  s.argv.assign(c.argv().begin(), c.argv().end());
  s.env.assign(c.env().begin(), c.env().end());
  s.working_dir = c.working_dir();
  s.uid = c.uid();
  s.gid = c.gid();
  s.port = static_cast<uint16_t>(c.port() == 0 ? 8080 : c.port());
  s.vcpus_milli = c.vcpus_milli() == 0 ? 1000 : c.vcpus_milli();
  if (c.memory_bytes() > 0) s.memory_bytes = c.memory_bytes();
  s.pids_max = c.pids_limit();
  s.cgroup_path = c.cgroup_path();
  s.host_ifname = c.host_veth();
  s.host_ip = c.host_ip();
  s.instance_ip = c.instance_ip();
  s.prefix_len = c.prefix_len() == 0 ? 31 : c.prefix_len();
  s.vmm_path = c.gen2().vmm_path();
  s.kernel_path = c.gen2().kernel_path();
  s.initramfs_path = c.gen2().initramfs_path();
  s.host_resolv_conf = host_resolv_conf;
  return s;
}

}  // namespace skiff::shim
