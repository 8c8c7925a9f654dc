#pragma once

// A gen2 sandbox: the instance runs in a KVM microVM. The host side, owned by the shim:
//
//   Start: validate → the root image (erofs of the image's layers, <run_dir>/root.erofs) →
//   the cgroup (the instance's CPU and pids limits; memory = guest memory + kVmmOverhead) →
//   a persistent tap <host_ifname> addressed host_ip/prefix and up → the control socket
//   (<run_dir>/control.sock, listening) → fork: the child waits until the parent has put it
//   in the cgroup, then execs skiff-vmm (kernel, initramfs, root disk read-only, tap, control
//   socket, serial console → <run_dir>/serial.log, its own log → <run_dir>/vmm.log).
//   In the guest, skiff-init says hello on the control channel; the sandbox answers with the
//   instance spec (control/messages.h); skiff-init reports started, the app's output (→ the
//   OutputSink), and its exit; then it resets the VM and skiff-vmm exits.
//
// The VMM process is the "init" the shim reaps (vmm_pid()). Its threads run in the
// instance's cgroup, so the CPU quota and the request-based throttle apply to the guest.
// The control protocol runs here, in the shim, which stays outside the cgroup and so stays
// responsive while the instance is throttled.
//
// Threading: not thread-safe; one owner (the shim's event loop), which watches event_fd()
// and calls OnEvent() when it is readable.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/common/app_exit.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/codec.h"
#include "sandbox/gen2/guest/control/messages.h"

namespace skiff::gen2 {

// What the VMM process needs on top of the guest memory (its own RSS is ~5 MiB; page
// tables, the shared libraries and the device buffers make up the rest).
inline constexpr uint64_t kVmmOverhead = 64ull << 20;

struct Gen2SandboxSpec {
  std::string instance_id;
  std::string hostname;
  std::string run_dir;  // absolute, exists; the sandbox's files live here
  // Root filesystem: read-only layer dirs, topmost first (as gen1).
  std::vector<std::string> lower_dirs;
  // Process.
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string working_dir;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint16_t port = 8080;
  // Resources: guest vCPUs = ceil(vcpus_milli / 1000), guest memory = memory_bytes.
  uint32_t vcpus_milli = 1000;
  uint64_t memory_bytes = 256ull << 20;
  uint32_t pids_max = 0;
  std::string cgroup_path;  // relative to each hierarchy's root
  // Network: a tap on the host, host_ip/prefix_len on it; the guest's eth0 gets instance_ip.
  std::string host_ifname;
  std::string host_ip;
  std::string instance_ip;
  uint32_t prefix_len = 31;
  // The VMM and the guest's boot files.
  std::string vmm_path;  // skiff-vmm
  std::string kernel_path;
  std::string initramfs_path;  // with skiff-init as /init
  std::string mkfs_erofs = "/usr/bin/mkfs.erofs";
  // Bytes of the host's /etc/resolv.conf (the guest gets it without loopback servers).
  std::string host_resolv_conf;
};

// One validation, naming the field; Start calls it first.
absl::Status ValidateGen2SandboxSpec(const Gen2SandboxSpec& spec);

// The guest's eth0 MAC address, derived from its IP: 06:6b:<a>:<b>:<c>:<d> (locally
// administered, unicast).
std::string GuestMac(const std::string& instance_ip);

// The instance spec skiff-init receives.
absl::StatusOr<control::InstanceSpec> ToGuestSpec(const Gen2SandboxSpec& spec);

// Where the app's output goes: stream 1 = stdout, 2 = stderr.
using OutputSink = std::function<void(int stream, std::string_view data)>;

class Gen2Sandbox {
 public:
  static absl::StatusOr<std::unique_ptr<Gen2Sandbox>> Start(const Gen2SandboxSpec& spec,
                                                            OutputSink output);
  ~Gen2Sandbox();  // SIGKILLs and reaps the VMM if still running, then Destroy()s.
  Gen2Sandbox(const Gen2Sandbox&) = delete;
  Gen2Sandbox& operator=(const Gen2Sandbox&) = delete;

  pid_t vmm_pid() const { return vmm_pid_; }
  // An epoll fd covering the control socket (listening, then the VMM's connection).
  int event_fd() const { return epoll_.get(); }
  // Serves the control channel: accepts the VMM's connection, answers hello with the spec,
  // passes output to the sink, records started/exited/error. Never blocks for long.
  void OnEvent();

  // TERM, INT, ...: forwarded to the app through skiff-init (queued until the guest said
  // hello). KILL: the whole VM, at once.
  absl::Status Signal(int sig);
  // SIGKILLs the VMM and every process in the cgroup.
  absl::Status KillAll();
  // The owner reaped the VMM: the app's exit as skiff-init reported it, else the VMM's.
  AppExit OnVmmExited(int wait_status);
  absl::StatusOr<bool> OomKilled() const;
  // Why the guest could not start the app (skiff-init's error frame), if it said so.
  const std::optional<std::string>& guest_error() const { return guest_error_; }
  Cgroup& cgroup() { return *cgroup_; }
  // After the VMM has been reaped: kills stragglers, removes the cgroup, the tap, the root
  // image and the control socket. Idempotent.
  absl::Status Destroy();

 private:
  Gen2Sandbox() = default;
  absl::Status BuildRoot(const Gen2SandboxSpec& spec);
  absl::Status CreateCgroup(const Gen2SandboxSpec& spec);
  absl::Status CreateTap(const Gen2SandboxSpec& spec);
  absl::Status ListenControl();
  absl::Status LaunchVmm(const Gen2SandboxSpec& spec);
  void OnAccept();
  void OnControlData();
  void Handle(control::Message message);
  void SendSignal(int sig);
  void CloseControl();

  OutputSink output_;
  control::InstanceSpec guest_spec_;
  std::string run_dir_;
  std::string root_image_;
  std::string control_path_;
  std::string tap_name_;
  std::unique_ptr<Cgroup> cgroup_;
  UniqueFd epoll_;
  UniqueFd listen_;
  UniqueFd conn_;
  control::FrameReader reader_;
  pid_t vmm_pid_ = -1;
  bool vmm_reaped_ = false;
  bool spec_sent_ = false;
  std::vector<int> pending_signals_;
  std::optional<control::Exited> exited_;
  std::optional<std::string> guest_error_;
  bool destroyed_ = false;
};

}  // namespace skiff::gen2
