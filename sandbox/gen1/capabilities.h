#pragma once

// The Linux capabilities an instance keeps (docs/security.md has the list and why).
//
// Prepared in the parent (may allocate: names are resolved through libcap, the kernel's
// last capability is read), applied in the sandbox's app process between fork/clone and
// execve with raw prctl()/capset() calls only (async-signal-safe, no allocation).
//
// Order in the child, around the switch to the image's user:
//   DropBoundingSet(caps)      // still root with CAP_SETPCAP
//   setgroups / setresgid
//   PrepareUidChange(caps)     // keep the permitted set across setresuid
//   setresuid
//   ApplyCapabilities(caps)    // permitted = effective = caps, inheritable = ambient = 0
//   (no_new_privs, seccomp, execve)
//
// After execve a root (uid 0) app has exactly `caps` (permitted, effective, bounding); a
// non-root app has none (effective and permitted are empty, as in Docker), and the
// bounding set stops it from regaining more through setuid-root or file-capability
// binaries (no_new_privs already does).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::gen1 {

class CapabilitySet {
 public:
  CapabilitySet() = default;  // empty: keeps nothing

  // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE
  // SYS_CHROOT AUDIT_WRITE SETFCAP (Docker's default set minus NET_RAW and MKNOD).
  static absl::StatusOr<CapabilitySet> Default();
  // From names as libcap spells them ("cap_chown", "CAP_NET_BIND_SERVICE", "chown");
  // InvalidArgument names an unknown one.
  static absl::StatusOr<CapabilitySet> FromNames(const std::vector<std::string>& names);

  bool Has(int cap) const { return cap >= 0 && cap < 64 && (mask_ >> cap) & 1; }
  uint64_t mask() const { return mask_; }
  // "cap_chown", ... in capability-number order.
  std::vector<std::string> Names() const;
  // The kernel's highest capability number (/proc/sys/kernel/cap_last_cap), read once
  // at preparation so the child does not have to.
  int last_cap() const { return last_cap_; }

 private:
  uint64_t mask_ = 0;
  int last_cap_ = -1;
};

// Default(), the set the gen1 sandbox uses.
absl::StatusOr<CapabilitySet> PrepareDefaultCapabilities();

// Async-signal-safe steps; each returns 0 or an errno.
// Drops every capability outside `caps` from the bounding set and clears the ambient
// set. Needs CAP_SETPCAP (run it before leaving root).
int DropBoundingSet(const CapabilitySet& caps);
// Sets PR_SET_KEEPCAPS so setresuid() to a non-root user keeps the permitted set
// (ApplyCapabilities needs it to set the effective set and clears the flag again).
int PrepareUidChange(const CapabilitySet& caps);
// Clears PR_SET_KEEPCAPS, sets permitted = effective = `caps`, inheritable = 0, and
// clears the ambient set.
int ApplyCapabilities(const CapabilitySet& caps);

}  // namespace skiff::gen1
