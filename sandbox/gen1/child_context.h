#pragma once

// Everything the sandbox's children (the init and the app) use between clone() and
// execve(), prepared — allocated, formatted, validated — by the parent beforehand. The
// children only read it: plain pointers into strings the parent keeps alive.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace skiff::gen1 {

class SeccompProgram;
class CapabilitySet;

struct DevNode {
  const char* path;  // absolute inside the instance, e.g. "/dev/null"
  mode_t mode;       // S_IFCHR | 0666
  unsigned major;
  unsigned minor;
};

struct DevLink {
  const char* path;    // e.g. "/dev/fd"
  const char* target;  // e.g. "/proc/self/fd"
};

struct EtcFile {
  const char* path;  // e.g. "/etc/hosts"
  const char* content;
  size_t size;
};

inline constexpr size_t kEtcFileCount = 3;

struct ChildContext {
  // Pipes, all O_CLOEXEC. The parent writes one byte to release_fd once the cgroup and
  // the veth are in place; children report failures on error_fd; the init reports the
  // app's wait status on exit_fd.
  int release_fd = -1;
  int error_fd = -1;
  int exit_fd = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;

  const char* hostname = nullptr;

  // Root filesystem.
  const char* layer_dir = nullptr;     // host dir; the writable tmpfs is mounted here
  const char* tmpfs_data = nullptr;    // "size=N,mode=0755"
  const char* upper_dir = nullptr;     // <layer_dir>/upper
  const char* work_dir = nullptr;      // <layer_dir>/work
  const char* merged_dir = nullptr;    // <layer_dir>/merged → becomes "/"
  const char* overlay_data = nullptr;  // relative to layer_dir: "lowerdir=l0:l1,upperdir=upper,..."
  const char* const* lower_dirs = nullptr;   // host paths, topmost first
  const char* const* lower_links = nullptr;  // <layer_dir>/l<i>, symlinks to lower_dirs[i]
  size_t lower_count = 0;
  EtcFile etc_files[kEtcFileCount] = {};

  // Network (inside the netns).
  bool has_veth = false;
  const char* ifname = nullptr;
  uint32_t instance_ip_be = 0;
  uint32_t host_ip_be = 0;
  uint32_t prefix_len = 0;

  // The app.
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* search_path = nullptr;  // PATH used when argv[0] has no '/'
  const char* working_dir = nullptr;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;
  const CapabilitySet* capabilities = nullptr;
  const SeccompProgram* seccomp = nullptr;
};

// The fixed record the init writes on exit_fd when the app has exited.
struct AppExitRecord {
  int32_t magic = 0;  // kAppExitMagic
  int32_t wait_status = 0;
};
inline constexpr int32_t kAppExitMagic = 0x736b6631;  // "skf1"

// The init (PID 1 of the instance): finishes the namespace-wide setup, forks the app,
// forwards signals, reaps orphans, reports the app's exit. Never returns.
[[noreturn]] void RunInit(const ChildContext& ctx);

}  // namespace skiff::gen1
