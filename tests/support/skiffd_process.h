#pragma once

// Test fixture pieces for end-to-end tests: a real skiffd process (the built binary)
// with its own socket, state dir, image root, cgroup parent and IP pool, and a gRPC
// stub to it. Everything lives under one temp dir, removed on destruction.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "skiff/v1/agent.grpc.pb.h"

namespace skiff::testing {

struct SkiffdOptions {
  std::vector<std::string> insecure_registries;
  std::string ip_pool = "10.89.0.0/24";
  // Relative cgroup parent, unique per test process so tests never touch "skiff/".
  std::string cgroup_parent;
  std::vector<std::string> extra_flags;
};

class SkiffdProcess {
 public:
  // Creates the temp dir layout; does not start the process.
  static absl::StatusOr<std::unique_ptr<SkiffdProcess>> Create(SkiffdOptions options);
  ~SkiffdProcess();

  // Starts skiffd and waits until its socket answers GetNode.
  absl::Status Start(absl::Duration timeout = absl::Seconds(20));
  // SIGTERM (or SIGKILL) and reap. Instances (detached shims) keep running.
  // DeadlineExceeded (after a SIGKILL) if skiffd outlives `timeout`.
  absl::Status Stop(bool kill = false, absl::Duration timeout = absl::Seconds(5));

  v1::Agent::Stub& stub() { return *stub_; }
  const std::string& socket() const { return socket_; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& root() const { return root_; }
  const SkiffdOptions& options() const { return options_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // Removes the (empty) per-test cgroup parent from every v1 hierarchy.
  void RemoveCgroupParent();

 private:
  SkiffdProcess() = default;
  SkiffdOptions options_;
  std::string root_, socket_, state_dir_, image_root_, log_;
  pid_t pid_ = -1;
  std::unique_ptr<v1::Agent::Stub> stub_;
};

// Paths of built binaries (from SKIFF_BUILD_DIR set by skiff_add_test).
std::string BuildPath(const std::string& rel);

}  // namespace skiff::testing
