#pragma once

// The gen1 seccomp policy (docs/security.md lists it and explains the choices).
//
// Built once in the parent with libseccomp and exported to a classic-BPF program; the
// sandbox's app process installs that program between fork/clone and execve with
// InstallSeccompProgram(), which is async-signal-safe (prctl + seccomp, no allocation).
//
// The policy is an allowlist over a default of EPERM: only the syscalls an ordinary
// Linux userland needs (DefaultAllowedSyscalls(), grouped by purpose in the .cc) are
// allowed; everything else — in particular the syscalls that reach host-wide kernel
// state (mounts, modules, kexec, bpf, perf, ptrace, keyrings, namespaces, io_uring,
// swap, reboot, clock, handle-based opens ..., DefaultDeniedSyscalls()) — fails with
// EPERM. Argument filters: clone() is allowed only without namespace flags; clone3()
// fails with ENOSYS so libc falls back to clone(), whose flags a filter can see;
// personality() only with the usual personas; socket() only for AF_UNIX, AF_INET,
// AF_INET6, AF_NETLINK and AF_PACKET. Syscalls newer than the policy's review
// (number > 450) fail with ENOSYS. Any syscall made through another ABI (i386
// `int 0x80`, x32) kills the process.

#include <linux/filter.h>

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::gen1 {

class SeccompProgram {
 public:
  SeccompProgram() = default;  // empty: InstallSeccompProgram refuses it (EINVAL)
  explicit SeccompProgram(std::vector<sock_filter> insns) : insns_(std::move(insns)) {}

  const sock_filter* data() const { return insns_.data(); }
  size_t size() const { return insns_.size(); }
  bool empty() const { return insns_.empty(); }

 private:
  std::vector<sock_filter> insns_;
};

// The syscalls the default policy allows without argument conditions (names as
// libseccomp spells them). Exposed for tests and docs.
const std::vector<std::string>& DefaultAllowedSyscalls();

// Syscalls reviewed and deliberately left out of the allowlist, so they fail with EPERM
// (names as libseccomp spells them). BuildDefaultPolicy() refuses to build if any of
// them is also allowed. Exposed for tests and docs.
const std::vector<std::string>& DefaultDeniedSyscalls();

// Builds the default policy for x86_64.
absl::StatusOr<SeccompProgram> BuildDefaultPolicy();

// Sets no_new_privs and installs `program` on the calling thread. Async-signal-safe.
// Returns 0 or an errno (EINVAL for an empty program).
int InstallSeccompProgram(const SeccompProgram& program);

}  // namespace skiff::gen1
