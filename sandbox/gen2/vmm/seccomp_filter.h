#pragma once

// The VMM confines itself once the VM is built: a seccomp filter over every thread of the
// process (SECCOMP_FILTER_FLAG_TSYNC) with no_new_privs, that allows only what running
// the vCPUs, emulating devices and exiting need, and kills the process on anything else.
// Opening files, creating sockets, exec, fork/clone, mount, ptrace, new KVM VMs or vCPUs,
// and every ioctl but KVM_RUN / KVM_IRQ_LINE on any fd are gone. Installing it is
// irreversible for the whole process: in-process tests run it in a forked child.

#include <vector>

#include "absl/status/status.h"

namespace skiff::gen2 {

// The syscalls the filter allows (names as libseccomp spells them), for tests and docs.
// ioctl is allowed only with the KVM_RUN and KVM_IRQ_LINE requests.
const std::vector<const char*>& VmmAllowedSyscalls();

absl::Status InstallVmmSeccompFilter();

}  // namespace skiff::gen2
