#pragma once

// skiff-init's command line.
//
// As the guest's PID 1 it takes no flags: the kernel starts /init with the command line's
// leftover words, which are ignored. The control channel is /dev/hvc0.
//
// Test mode, for running the real binary as an ordinary process (tests/unit/gen2_guest):
//   skiff-init --test --control=unix:/path/to.sock     connect to a Unix stream socket
//   skiff-init --test --control=fd:N                   use an inherited fd (a socketpair)
//   skiff-init --test --test-network --control=...     also configure lo and eth0
// In test mode the system steps — mounting the kernel filesystems, loading modules, the
// root filesystem and its overlay, writing files, hostname, network, switch_root, reboot —
// are skipped; the app runs in the caller's filesystem as a child of a subreaper in its
// own session, "everything" for a KILL is that session's process group, and skiff-init
// exits (0 after reporting the app's exit, 1 after reporting an error) instead of
// rebooting. --test-network keeps the network step: lo and eth0 of skiff-init's own network
// namespace get the spec's address, MAC and route (fake-vmm runs it in a namespace whose
// tap "eth0" is bridged to the instance's host tap, tests/support/tap_guest.cc).
//
// --control also works without --test: every step then runs as in the guest, with the
// channel on a socket or fd. tests/integration/gen2_guest runs it so, as PID 1 of new
// pid, mount, uts and net namespaces inside a chroot standing in for the initramfs (its
// reboot(RB_AUTOBOOT) then ends the PID namespace with SIGHUP).

#include <string>

namespace skiff::gen2::init {

struct Options {
  bool test_mode = false;
  bool test_network = false;               // test mode only: run the network step too
  std::string control_path = "/dev/hvc0";  // a tty (raw mode) or, in test mode, a socket
  bool control_is_socket = false;
  int control_fd = -1;  // >= 0: an inherited fd instead of control_path
  std::string modules_list = "/modules/modules.list";
};

// False with *error set for a malformed flag. Words that are not flags are ignored (the
// kernel passes leftover command-line words to init).
bool ParseOptions(int argc, char** argv, Options* options, std::string* error);

}  // namespace skiff::gen2::init
