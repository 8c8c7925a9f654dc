#pragma once

// The messages of skiff's host↔guest control protocol (carried over the control channel,
// a virtio-console: the guest's /dev/hvc0 ↔ a Unix stream socket of the VMM). Plain data;
// the wire format is in codec.h, the rules every field obeys in validate.h.
//
// Only the C++ standard library: skiff-init links this statically, without abseil.

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace skiff::gen2::control {

inline constexpr uint32_t kProtocolVersion = 1;

// The u8 type byte of a frame. Host→guest types are below 16, guest→host types 16 and up.
enum class MessageType : uint8_t {
  kSpec = 1,
  kSignal = 2,
  kHello = 16,
  kStarted = 17,
  kLog = 18,
  kExited = 19,
  kError = 20,
};

// ---- host → guest ----

// eth0's IPv4 configuration. Addresses are in network byte order (a.b.c.d = {a, b, c, d}).
struct NetworkConfig {
  bool enabled = false;  // false: loopback only
  std::array<uint8_t, 4> address = {};
  uint8_t prefix_length = 0;            // 1..32
  std::array<uint8_t, 4> gateway = {};  // 0.0.0.0: no default route
  std::array<uint8_t, 6> mac = {};      // all zero: keep the device's own address

  bool operator==(const NetworkConfig&) const = default;
};

// A file skiff-init writes into the writable layer before the app starts (/etc/hosts,
// /etc/hostname, /etc/resolv.conf, as gen1 generates them).
struct GuestFile {
  std::string path;  // absolute, no "." or ".." components
  std::string content;

  bool operator==(const GuestFile&) const = default;
};

// Everything the guest needs to run the instance: the first message the host sends.
struct InstanceSpec {
  std::vector<std::string> argv;  // argv[0]: absolute path, or a name looked up in PATH
  std::vector<std::string> env;   // "K=V"; PORT=<port> is set (replaced) by skiff-init
  std::string working_dir;        // absolute; "" = "/"
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string hostname;
  uint16_t port = 8080;
  NetworkConfig network;
  uint64_t tmpfs_bytes = 0;  // size of the writable layer (counts against guest memory)
  std::string root_device;   // "/dev/vda"
  std::string root_fstype;   // "erofs" or "ext4"
  std::vector<GuestFile> files;

  bool operator==(const InstanceSpec&) const = default;
};

// Deliver a signal to the app (TERM and friends) or end everything (KILL).
struct SignalRequest {
  int32_t signo = 0;

  bool operator==(const SignalRequest&) const = default;
};

// ---- guest → host ----

struct Hello {
  uint32_t version = kProtocolVersion;

  bool operator==(const Hello&) const = default;
};

struct Started {
  int32_t pid = 0;

  bool operator==(const Started&) const = default;
};

enum class LogStream : uint8_t { kStdout = 1, kStderr = 2 };

struct LogChunk {
  LogStream stream = LogStream::kStdout;
  std::string data;  // 1..kMaxLogChunk bytes, any content

  bool operator==(const LogChunk&) const = default;
};

struct Exited {
  bool signaled = false;  // false: `value` is the exit code; true: the signal number
  int32_t value = 0;

  bool operator==(const Exited&) const = default;
};

// The skiff-init step that failed. Stable numbers: they cross the wire.
enum class InitStep : uint8_t {
  kMountKernelFs = 1,
  kLoadModules = 2,
  kOpenControl = 3,
  kHello = 4,
  kReceiveSpec = 5,
  kMountRoot = 6,
  kMoveKernelFs = 7,
  kWriteFiles = 8,
  kHostname = 9,
  kNetwork = 10,
  kSwitchRoot = 11,
  kStartApp = 12,
  kSupervise = 13,
  kControl = 14,  // the host sent something invalid after the spec
};
inline constexpr uint8_t kMaxInitStep = 14;

// Name of a step ("mount_root"), for logs on either side; "unknown" outside the enum.
const char* InitStepName(InitStep step);

struct Error {
  InitStep step = InitStep::kMountKernelFs;
  int32_t err = 0;     // errno, 0..4095 (EPROTO for protocol errors)
  std::string detail;  // what was being done, printable ASCII, <= kMaxErrorDetail

  bool operator==(const Error&) const = default;
};

using Message = std::variant<InstanceSpec, SignalRequest, Hello, Started, LogChunk, Exited, Error>;

MessageType TypeOf(const Message& message);

}  // namespace skiff::gen2::control
