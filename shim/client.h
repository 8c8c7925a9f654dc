#pragma once

// skiffd's side of the shim API (proto/skiff/v1/shim.proto).
//
// Files in an instance's state dir (owned by the shim once launched):
//   config.pb     ShimConfig, written by skiffd before launch
//   shim.sock     SOCK_SEQPACKET control socket (mode 0600)
//   shim.pid      the shim's pid
//   status.pb     latest ShimStatus, atomically replaced on each change
//   console.log   the instance's stdout/stderr in the CRI log format, one line each:
//                 "<RFC3339Nano UTC> <stdout|stderr> <F|P> <bytes>\n"
//                 (P = partial line continued in the next record)

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sandbox/common/unique_fd.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::shim {

// Writes config.pb into config.state_dir() and starts `shim_binary --state-dir DIR`
// fully detached (double fork + setsid; it is not skiffd's child afterwards).
// Returns once the shim answers on its socket, which it does only after the sandbox
// started (the instance is RUNNING). If the instance could not start, the shim records
// EXITED/START_FAILED in status.pb and exits, and this returns FailedPrecondition
// carrying that message (naming the failing step and path); if the shim itself failed,
// Unavailable with the tail of its shim.log. AlreadyExists (touching nothing) if a shim
// already serves the state dir.
absl::Status LaunchShim(const std::string& shim_binary, const v1::shim::ShimConfig& config,
                        absl::Duration timeout = absl::Seconds(10));

class ShimClient {
 public:
  // Unavailable if no shim listens at <state_dir>/shim.sock.
  static absl::StatusOr<std::unique_ptr<ShimClient>> Connect(const std::string& state_dir);

  absl::StatusOr<v1::shim::ShimStatus> GetStatus();
  // SIGTERM now, SIGKILL after grace (the config's termination_grace when unset).
  // Returns once the shim has acted on it; does not wait for the exit.
  absl::Status Stop(std::optional<absl::Duration> grace);
  // Streams status changes on this connection (the first is the current status)
  // until EXITED (returns OK) or the shim goes away (Unavailable). Blocks.
  absl::Status Subscribe(const std::function<void(const v1::shim::ShimStatus&)>& on_status);
  // Thread-safe: makes a Subscribe blocked in another thread return Cancelled (and any
  // later call fail). The connection is unusable afterwards; the shim is unaffected.
  void Cancel();

 private:
  explicit ShimClient(UniqueFd fd) : fd_(std::move(fd)) {}
  absl::Status Cancelled(const absl::Status& st) const;
  UniqueFd fd_;
  std::atomic<bool> cancelled_{false};
};

// Reads <state_dir>/status.pb (for instances whose shim has exited).
absl::StatusOr<v1::shim::ShimStatus> ReadStatusFile(const std::string& state_dir);

}  // namespace skiff::shim
