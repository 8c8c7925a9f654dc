#include "sandbox/gen2/guest/control/validate.h"

#include <signal.h>

#include <string_view>

namespace skiff::gen2::control {

namespace {

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// A printable rendering of an untrusted string for an error message, cut at 32 bytes.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 32; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? static_cast<char>(c) : '?';
  }
  if (s.size() > 32) out += "...";
  return out + "\"";
}

std::string Field(const char* name, size_t index) {
  return std::string(name) + "[" + std::to_string(index) + "]";
}

// Absolute, no NUL, no empty/"."/".." components' tricks beyond plain "/" separators.
std::string CheckAbsolutePath(const std::string& field, std::string_view path) {
  if (path.empty() || path[0] != '/') return field + ": not an absolute path: " + Quote(path);
  if (path.size() > kMaxPathBytes) return field + ": longer than " + std::to_string(kMaxPathBytes);
  if (HasNul(path)) return field + ": contains NUL";
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view part = path.substr(pos, next - pos);
    if (part == "." || part == "..") return field + ": '.' or '..' component in " + Quote(path);
    pos = next + 1;
  }
  return "";
}

std::string CheckStringList(const char* name, const std::vector<std::string>& list,
                            size_t max_count, bool need_equals) {
  if (list.size() > max_count) {
    return std::string(name) + ": more than " + std::to_string(max_count) + " entries";
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& s = list[i];
    if (s.size() > kMaxArgBytes) return Field(name, i) + ": longer than 128 KiB";
    if (HasNul(s)) return Field(name, i) + ": contains NUL";
    if (need_equals) {
      size_t eq = s.find('=');
      if (eq == std::string::npos) return Field(name, i) + ": no '=' in " + Quote(s);
      if (eq == 0) return Field(name, i) + ": empty name in " + Quote(s);
    }
  }
  return "";
}

bool IsHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

std::string CheckNetwork(const NetworkConfig& n) {
  if (!n.enabled) {
    if (n.address != std::array<uint8_t, 4>{} || n.prefix_length != 0 ||
        n.gateway != std::array<uint8_t, 4>{} || n.mac != std::array<uint8_t, 6>{}) {
      return "spec.network: disabled but has an address, prefix, gateway or MAC";
    }
    return "";
  }
  if (n.address == std::array<uint8_t, 4>{}) return "spec.network.address: 0.0.0.0";
  if (n.address[0] == 127 || n.address[0] >= 224) {
    return "spec.network.address: loopback, multicast or reserved";
  }
  if (n.prefix_length < 1 || n.prefix_length > 32) {
    return "spec.network.prefix_length: " + std::to_string(n.prefix_length) + " not in 1..32";
  }
  if (n.gateway != std::array<uint8_t, 4>{}) {
    if (n.gateway == n.address) return "spec.network.gateway: equals the address";
    uint32_t a = (uint32_t{n.address[0]} << 24) | (uint32_t{n.address[1]} << 16) |
                 (uint32_t{n.address[2]} << 8) | n.address[3];
    uint32_t g = (uint32_t{n.gateway[0]} << 24) | (uint32_t{n.gateway[1]} << 16) |
                 (uint32_t{n.gateway[2]} << 8) | n.gateway[3];
    uint32_t mask = n.prefix_length == 32 ? ~0u : ~(~0u >> n.prefix_length);
    if ((a & mask) != (g & mask)) return "spec.network.gateway: outside the address's subnet";
  }
  if (n.mac != std::array<uint8_t, 6>{} && (n.mac[0] & 1) != 0) {
    return "spec.network.mac: a multicast address";
  }
  return "";
}

std::string CheckSpec(const InstanceSpec& s) {
  if (s.argv.empty()) return "spec.argv: empty";
  if (s.argv[0].empty()) return "spec.argv[0]: empty";
  if (std::string e = CheckStringList("spec.argv", s.argv, kMaxArgs, false); !e.empty()) return e;
  if (std::string e = CheckStringList("spec.env", s.env, kMaxEnv, true); !e.empty()) return e;
  if (!s.working_dir.empty()) {
    if (std::string e = CheckAbsolutePath("spec.working_dir", s.working_dir); !e.empty()) {
      return e;
    }
  }
  if (s.uid == UINT32_MAX) return "spec.uid: 4294967295 is not a user";
  if (s.gid == UINT32_MAX) return "spec.gid: 4294967295 is not a group";
  if (s.hostname.empty() || s.hostname.size() > kMaxHostnameBytes) {
    return "spec.hostname: length " + std::to_string(s.hostname.size()) + " not in 1..64";
  }
  for (char c : s.hostname) {
    if (!IsHostnameChar(c)) return "spec.hostname: bad character in " + Quote(s.hostname);
  }
  if (s.port == 0) return "spec.port: 0";
  if (std::string e = CheckNetwork(s.network); !e.empty()) return e;
  if (s.tmpfs_bytes < kMinTmpfsBytes || s.tmpfs_bytes > kMaxTmpfsBytes) {
    return "spec.tmpfs_bytes: " + std::to_string(s.tmpfs_bytes) + " not in 1 MiB..1 TiB";
  }
  // /dev/<name>, name of [a-z0-9] only: the VMM's block devices (vda, vdb, ...).
  std::string_view dev = s.root_device;
  if (dev.size() <= 5 || dev.size() > kMaxDeviceBytes || dev.substr(0, 5) != "/dev/") {
    return "spec.root_device: not /dev/<name>: " + Quote(dev);
  }
  for (char c : dev.substr(5)) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return "spec.root_device: bad character in " + Quote(dev);
    }
  }
  if (s.root_fstype != "erofs" && s.root_fstype != "ext4") {
    return "spec.root_fstype: not erofs or ext4: " + Quote(s.root_fstype);
  }
  if (s.files.size() > kMaxFiles) return "spec.files: more than 16 entries";
  for (size_t i = 0; i < s.files.size(); ++i) {
    std::string field = Field("spec.files", i);
    if (std::string e = CheckAbsolutePath(field + ".path", s.files[i].path); !e.empty()) return e;
    if (s.files[i].path == "/" || s.files[i].path.back() == '/') {
      return field + ".path: names a directory";
    }
    if (s.files[i].content.size() > kMaxFileBytes) return field + ".content: longer than 64 KiB";
  }
  return "";
}

std::string CheckError(const Error& e) {
  uint8_t step = static_cast<uint8_t>(e.step);
  if (step < 1 || step > kMaxInitStep) return "error.step: " + std::to_string(step) + " unknown";
  if (e.err < 0 || e.err > 4095) return "error.err: " + std::to_string(e.err) + " not an errno";
  if (e.detail.size() > kMaxErrorDetail) return "error.detail: longer than 256";
  for (char c : e.detail) {
    if (c < 0x20 || c > 0x7e) return "error.detail: not printable ASCII";
  }
  return "";
}

struct Checker {
  std::string operator()(const InstanceSpec& s) const { return CheckSpec(s); }
  std::string operator()(const SignalRequest& s) const {
    return IsForwardableSignal(s.signo)
               ? ""
               : "signal.signo: " + std::to_string(s.signo) + " is not one the host may send";
  }
  std::string operator()(const Hello&) const { return ""; }
  std::string operator()(const Started& s) const {
    return s.pid > 0 ? "" : "started.pid: " + std::to_string(s.pid) + " not positive";
  }
  std::string operator()(const LogChunk& l) const {
    if (l.stream != LogStream::kStdout && l.stream != LogStream::kStderr) {
      return "log.stream: " + std::to_string(static_cast<int>(l.stream)) + " unknown";
    }
    if (l.data.empty() || l.data.size() > kMaxLogChunk) return "log.data: length not in 1..16384";
    return "";
  }
  std::string operator()(const Exited& e) const {
    if (e.signaled) {
      return e.value >= 1 && e.value <= 64
                 ? ""
                 : "exited.value: signal " + std::to_string(e.value) + " not in 1..64";
    }
    return e.value >= 0 && e.value <= 255
               ? ""
               : "exited.value: exit code " + std::to_string(e.value) + " not in 0..255";
  }
  std::string operator()(const Error& e) const { return CheckError(e); }
};

}  // namespace

bool IsForwardableSignal(int32_t signo) {
  switch (signo) {
    case SIGTERM:
    case SIGKILL:
    case SIGINT:
    case SIGHUP:
    case SIGQUIT:
    case SIGUSR1:
    case SIGUSR2:
      return true;
    default:
      return false;
  }
}

std::string ValidateMessage(const Message& message) { return std::visit(Checker{}, message); }

}  // namespace skiff::gen2::control
