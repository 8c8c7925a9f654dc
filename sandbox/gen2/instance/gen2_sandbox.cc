#include "sandbox/gen2/instance/gen2_sandbox.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sandbox/common/net.h"
#include "sandbox/common/status.h"
#include "sandbox/gen1/etc_files.h"
#include "sandbox/gen2/devices/virtio/tap.h"
#include "sandbox/gen2/guest/control/host_channel.h"
#include "sandbox/gen2/guest/control/validate.h"
#include "sandbox/gen2/guest/root_image.h"

namespace skiff::gen2 {
namespace {

// The guest kernel's command line (skiff-vmm appends the virtio-mmio devices). reboot=k:
// skiff-init's reboot resets through the i8042, which ends the VM; panic=-1: a panic too.
constexpr char kKernelCmdline[] =
    "console=ttyS0 reboot=k panic=-1 quiet i8042.noaux i8042.nomux i8042.dumbkbd";
constexpr uint64_t kListenToken = 1;
constexpr uint64_t kConnToken = 2;
constexpr int kMaxReadsPerEvent = 16;

absl::Status CheckAbsoluteFile(const char* field, const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(field, " (", path, "): not an absolute path"));
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, field, " (", path, ")");
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " (", path, "): not a regular file"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateGen2SandboxSpec(const Gen2SandboxSpec& s) {
  if (s.instance_id.empty()) return absl::InvalidArgumentError("instance_id: empty");
  if (s.run_dir.empty() || s.run_dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("run_dir (", s.run_dir, "): not absolute"));
  }
  if (s.lower_dirs.empty()) return absl::InvalidArgumentError("lower_dirs: empty");
  if (s.argv.empty() || s.argv[0].empty()) return absl::InvalidArgumentError("argv: empty");
  if (s.cgroup_path.empty()) return absl::InvalidArgumentError("cgroup_path: empty");
  if (s.vcpus_milli == 0 || s.vcpus_milli > 8000) {
    return absl::InvalidArgumentError(
        absl::StrCat("vcpus_milli (", s.vcpus_milli, "): want 1..8000 (1..8 guest vCPUs)"));
  }
  if (s.memory_bytes < (64ull << 20) || s.memory_bytes > (64ull << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_bytes (", s.memory_bytes, "): want 64 MiB..64 GiB for a microVM"));
  }
  if (s.host_ifname.empty() || s.host_ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("host_ifname (", s.host_ifname, "): want 1..15 bytes"));
  }
  SKIFF_RETURN_IF_ERROR(CheckAbsoluteFile("vmm_path", s.vmm_path));
  SKIFF_RETURN_IF_ERROR(CheckAbsoluteFile("kernel_path", s.kernel_path));
  SKIFF_RETURN_IF_ERROR(CheckAbsoluteFile("initramfs_path", s.initramfs_path));
  return ToGuestSpec(s).status();
}

std::string GuestMac(const std::string& instance_ip) {
  absl::StatusOr<uint32_t> ip = ParseIpv4(instance_ip);
  const uint32_t be = ip.ok() ? *ip : 0;
  const auto* b = reinterpret_cast<const uint8_t*>(&be);
  return absl::StrFormat("06:6b:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]);
}

absl::StatusOr<control::InstanceSpec> ToGuestSpec(const Gen2SandboxSpec& s) {
  control::InstanceSpec g;
  g.argv = s.argv;
  g.env = s.env;
  g.working_dir = s.working_dir;
  g.uid = s.uid;
  g.gid = s.gid;
  g.hostname = s.hostname.empty() ? s.instance_id : s.hostname;
  g.port = s.port;
  absl::StatusOr<uint32_t> ip = ParseIpv4(s.instance_ip);
  if (!ip.ok()) return Annotate(ip.status(), "instance_ip");
  absl::StatusOr<uint32_t> gw = ParseIpv4(s.host_ip);
  if (!gw.ok()) return Annotate(gw.status(), "host_ip");
  g.network.enabled = true;
  std::memcpy(g.network.address.data(), &*ip, 4);
  std::memcpy(g.network.gateway.data(), &*gw, 4);
  g.network.prefix_length = static_cast<uint8_t>(s.prefix_len);
  g.network.mac = {0x06, 0x6b, 0, 0, 0, 0};
  std::memcpy(g.network.mac.data() + 2, &*ip, 4);
  // The writable layer is a tmpfs in guest memory: at most half of it, like a default tmpfs.
  g.tmpfs_bytes = s.memory_bytes / 2;
  g.root_device = "/dev/vda";
  g.root_fstype = "erofs";
  g.files.push_back({"/etc/hosts", gen1::HostsFileContent(g.hostname, s.instance_ip)});
  g.files.push_back({"/etc/hostname", gen1::HostnameFileContent(g.hostname)});
  g.files.push_back({"/etc/resolv.conf", gen1::ResolvConfContent(s.host_resolv_conf)});
  if (std::string error = control::ValidateMessage(control::Message(g)); !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("instance spec for the guest: ", error));
  }
  return g;
}

absl::StatusOr<std::unique_ptr<Gen2Sandbox>> Gen2Sandbox::Start(const Gen2SandboxSpec& spec,
                                                                OutputSink output) {
  SKIFF_RETURN_IF_ERROR(ValidateGen2SandboxSpec(spec));
  std::unique_ptr<Gen2Sandbox> sb(new Gen2Sandbox());
  sb->output_ = std::move(output);
  sb->run_dir_ = spec.run_dir;
  SKIFF_ASSIGN_OR_RETURN(sb->guest_spec_, ToGuestSpec(spec));
  // From here a failure returns and ~Gen2Sandbox releases what was acquired.
  SKIFF_RETURN_IF_ERROR(sb->BuildRoot(spec));
  SKIFF_RETURN_IF_ERROR(sb->CreateCgroup(spec));
  SKIFF_RETURN_IF_ERROR(sb->CreateTap(spec));
  SKIFF_RETURN_IF_ERROR(sb->ListenControl());
  SKIFF_RETURN_IF_ERROR(sb->LaunchVmm(spec));
  return sb;
}

absl::Status Gen2Sandbox::BuildRoot(const Gen2SandboxSpec& spec) {
  root_image_ = absl::StrCat(run_dir_, "/root.erofs");
  guest::RootImageSpec image;
  image.lower_dirs = spec.lower_dirs;
  image.mkfs_erofs = spec.mkfs_erofs;
  return Annotate(guest::BuildRootImage(image, root_image_), "root image");
}

absl::Status Gen2Sandbox::CreateCgroup(const Gen2SandboxSpec& spec) {
  SKIFF_ASSIGN_OR_RETURN(CgroupRoots roots, CgroupRoots::Detect());
  CgroupLimits limits;
  limits.vcpus_milli = spec.vcpus_milli;
  limits.memory_bytes = spec.memory_bytes + kVmmOverhead;
  limits.pids_max = spec.pids_max;
  SKIFF_ASSIGN_OR_RETURN(cgroup_, Cgroup::Create(roots, spec.cgroup_path, limits));
  return absl::OkStatus();
}

absl::Status Gen2Sandbox::CreateTap(const Gen2SandboxSpec& spec) {
  SKIFF_ASSIGN_OR_RETURN(UniqueFd tap, virtio::OpenTap(spec.host_ifname));
  tap_name_ = spec.host_ifname;
  // Persistent, so it outlives this fd: skiff-vmm attaches to it by name.
  if (ioctl(tap.get(), TUNSETPERSIST, 1) != 0) {
    return ErrnoStatus(errno, "ioctl(TUNSETPERSIST, ", spec.host_ifname, ")");
  }
  return AddressAndUp(spec.host_ifname, spec.host_ip, spec.prefix_len);
}

absl::Status Gen2Sandbox::ListenControl() {
  control_path_ = absl::StrCat(run_dir_, "/control.sock");
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (control_path_.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("control socket (", control_path_, "): too long"));
  }
  std::memcpy(addr.sun_path, control_path_.c_str(), control_path_.size() + 1);
  listen_ = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_) return ErrnoStatus(errno, "socket(AF_UNIX, SOCK_STREAM)");
  unlink(control_path_.c_str());
  if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "bind(", control_path_, ")");
  }
  if (chmod(control_path_.c_str(), 0600) != 0)
    return ErrnoStatus(errno, "chmod(", control_path_, ")");
  if (listen(listen_.get(), 1) != 0) return ErrnoStatus(errno, "listen(", control_path_, ")");
  epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return ErrnoStatus(errno, "epoll_create1");
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenToken;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_.get(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(ADD, control socket)");
  }
  return absl::OkStatus();
}

absl::Status Gen2Sandbox::LaunchVmm(const Gen2SandboxSpec& spec) {
  const uint32_t vcpus = (spec.vcpus_milli + 999) / 1000;
  std::vector<std::string> args = {
      spec.vmm_path,
      "--kernel",
      spec.kernel_path,
      "--initramfs",
      spec.initramfs_path,
      "--cmdline",
      kKernelCmdline,
      "--memory-mib",
      absl::StrCat((spec.memory_bytes + (1 << 20) - 1) >> 20),
      "--vcpus",
      absl::StrCat(vcpus),
      "--console",
      absl::StrCat(run_dir_, "/serial.log"),
      "--disk",
      absl::StrCat(root_image_, ",ro"),
      "--tap",
      tap_name_,
      "--mac",
      GuestMac(spec.instance_ip),
      "--control-socket",
      control_path_,
  };
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const std::string log_path = absl::StrCat(run_dir_, "/vmm.log");
  UniqueFd log(
      open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!log) return ErrnoStatus(errno, "open(", log_path, ")");
  UniqueFd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd) return ErrnoStatus(errno, "open(/dev/null)");
  int go[2], err[2];
  if (pipe2(go, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2(vmm start)");
  UniqueFd go_read(go[0]), go_write(go[1]);
  if (pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2(vmm exec error)");
  UniqueFd err_read(err[0]), err_write(err[1]);

  const pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork(skiff-vmm)");
  if (pid == 0) {
    // The child allocates nothing: it waits to be in the cgroup, wires its fds, execs.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char c;
    int e = 0;
    if (read(go_read.get(), &c, 1) != 1) e = EPIPE;
    if (e == 0 && (dup2(null_fd.get(), 0) < 0 || dup2(log.get(), 1) < 0 || dup2(log.get(), 2) < 0))
      e = errno;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (e == 0) {
      execv(argv[0], argv.data());
      e = errno;
    }
    (void)!write(err_write.get(), &e, sizeof(e));
    _exit(127);
  }
  vmm_pid_ = pid;
  go_read.Reset();
  err_write.Reset();
  if (absl::Status st = cgroup_->AddProcess(pid); !st.ok()) {
    return Annotate(st, "move skiff-vmm into the instance's cgroup");  // ~Gen2Sandbox kills it
  }
  if (write(go_write.get(), "g", 1) != 1) return ErrnoStatus(errno, "write(vmm start pipe)");
  go_write.Reset();
  int exec_errno = 0;
  ssize_t n;
  while ((n = read(err_read.get(), &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR) {
  }
  if (n == sizeof(exec_errno)) return ErrnoStatus(exec_errno, "execv(", spec.vmm_path, ")");
  return absl::OkStatus();
}

void Gen2Sandbox::OnEvent() {
  epoll_event events[4];
  const int n = epoll_wait(epoll_.get(), events, 4, 0);
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == kListenToken) OnAccept();
    if (events[i].data.u64 == kConnToken) OnControlData();
  }
}

void Gen2Sandbox::OnAccept() {
  UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) return;
  if (conn_) return;  // one VMM, one connection: a second one is refused by closing it
  // Only our VMM may speak for the guest.
  ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid != vmm_pid_) {
    return;
  }
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kConnToken;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) return;
  conn_ = std::move(fd);
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listen_.get(), nullptr);
  listen_.Reset();
}

void Gen2Sandbox::OnControlData() {
  char buf[65536];
  for (int reads = 0; conn_ && reads < kMaxReadsPerEvent; ++reads) {
    const ssize_t n = recv(conn_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return CloseControl();  // EOF: the VMM is going
    reader_.Append(buf, static_cast<size_t>(n));
    while (true) {
      control::Message message;
      std::string error;
      const control::DecodeStatus st = reader_.Next(&message, &error);
      if (st == control::DecodeStatus::kNeedMore) break;
      if (st == control::DecodeStatus::kError) {
        // A guest that breaks the protocol is not trusted with anything more.
        if (!guest_error_) guest_error_ = absl::StrCat("control channel: ", error);
        CloseControl();
        KillAll().IgnoreError();
        return;
      }
      Handle(std::move(message));
      if (!conn_) return;
    }
  }
}

void Gen2Sandbox::Handle(control::Message message) {
  if (auto* hello = std::get_if<control::Hello>(&message)) {
    if (hello->version != control::kProtocolVersion || spec_sent_) {
      guest_error_ =
          absl::StrCat("control channel: unexpected hello (version ", hello->version, ")");
      KillAll().IgnoreError();
      return;
    }
    if (absl::Status st = control::WriteMessage(conn_.get(), guest_spec_); !st.ok()) {
      guest_error_ = absl::StrCat("send the instance spec: ", st.message());
      KillAll().IgnoreError();
      return;
    }
    spec_sent_ = true;
    for (int sig : std::exchange(pending_signals_, {})) SendSignal(sig);
  } else if (auto* log = std::get_if<control::LogChunk>(&message)) {
    if (output_) output_(log->stream == control::LogStream::kStderr ? 2 : 1, log->data);
  } else if (auto* exited = std::get_if<control::Exited>(&message)) {
    exited_ = *exited;
  } else if (std::holds_alternative<control::Error>(message)) {
    guest_error_ = absl::StrCat("skiff-init: ", control::DescribeMessage(message));
  } else if (std::holds_alternative<control::Started>(message)) {
    // The app runs; the startup probe (the shim's) decides Ready.
  } else {
    guest_error_ = "control channel: the guest sent a host-to-guest message";
    KillAll().IgnoreError();
  }
}

void Gen2Sandbox::SendSignal(int sig) {
  if (!conn_) return;
  control::SignalRequest request;
  request.signo = sig;
  if (!control::WriteMessage(conn_.get(), request).ok()) CloseControl();
}

void Gen2Sandbox::CloseControl() {
  if (!conn_) return;
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn_.get(), nullptr);
  conn_.Reset();
}

absl::Status Gen2Sandbox::Signal(int sig) {
  if (vmm_reaped_ || vmm_pid_ <= 0) return absl::OkStatus();
  if (sig == SIGKILL) return KillAll();
  if (!control::IsForwardableSignal(sig)) {
    return absl::InvalidArgumentError(
        absl::StrCat("signal ", sig, ": not forwardable to the guest"));
  }
  if (spec_sent_) {
    SendSignal(sig);
  } else {
    // The guest is still booting: the signal waits for skiff-init to start the app.
    pending_signals_.push_back(sig);
  }
  return absl::OkStatus();
}

absl::Status Gen2Sandbox::KillAll() {
  if (vmm_pid_ > 0 && !vmm_reaped_) kill(vmm_pid_, SIGKILL);
  if (!cgroup_) return absl::OkStatus();
  return cgroup_->KillAll();
}

AppExit Gen2Sandbox::OnVmmExited(int wait_status) {
  vmm_reaped_ = true;
  // The last frames, if the VMM's exit woke the owner first (a connection accepted only
  // now is read too); each read goes on to EAGAIN or EOF.
  OnEvent();
  if (conn_) OnControlData();
  AppExit result;
  if (exited_) {
    result.reported = true;
    result.wait_status =
        exited_->signaled ? (exited_->value & 0x7f) : ((exited_->value & 0xff) << 8);
  } else {
    result.wait_status = wait_status;
  }
  return result;
}

absl::StatusOr<bool> Gen2Sandbox::OomKilled() const {
  if (!cgroup_) return false;
  return cgroup_->OomKilled();
}

absl::Status Gen2Sandbox::Destroy() {
  if (destroyed_) return absl::OkStatus();
  destroyed_ = true;
  absl::Status result;
  CloseControl();
  listen_.Reset();
  if (cgroup_) {
    if (absl::Status st = cgroup_->KillAll(); !st.ok()) result.Update(st);
    if (absl::Status st = cgroup_->Destroy(); !st.ok()) result.Update(st);
  }
  if (!tap_name_.empty()) {
    absl::Status st = DeleteLink(tap_name_);
    if (!st.ok() && !absl::IsNotFound(st)) result.Update(st);
  }
  if (!control_path_.empty()) unlink(control_path_.c_str());
  if (!root_image_.empty()) unlink(root_image_.c_str());
  return result;
}

Gen2Sandbox::~Gen2Sandbox() {
  if (vmm_pid_ > 0 && !vmm_reaped_) {
    kill(vmm_pid_, SIGKILL);
    while (waitpid(vmm_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    vmm_reaped_ = true;
  }
  Destroy().IgnoreError();
}

}  // namespace skiff::gen2
