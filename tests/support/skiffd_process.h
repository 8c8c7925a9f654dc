#pragma once

// Test fixture pieces for end-to-end tests: a real skiffd process (the built binary)
// with its own socket, state dir, image root, cgroup parent and IP pool, and a gRPC
// stub to it. Everything lives under one temp dir, removed on destruction.

#include <sys/types.h>

#include <cstdint>
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
  // Serve the HTTP ingress and /metrics on free loopback ports (see ingress_port(),
  // admin_port()), which also turns on request-based CPU throttling. Off: neither runs and
  // instances keep the CPU quota the shim set.
  bool ingress = false;
  std::string node_domain = "skiff.test";
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
  uint16_t ingress_port() const { return ingress_port_; }  // 0 without options.ingress
  uint16_t admin_port() const { return admin_port_; }
  bool running() const { return pid_ > 0; }
  // Deletes every service (when the ingress runs; its instances stop gracefully) and then
  // every instance (force: grace 0). The first error, naming what failed, if any.
  absl::Status DeleteAll();
  // Removes the (empty) per-test cgroup parent from every v1 hierarchy.
  void RemoveCgroupParent();

 private:
  SkiffdProcess() = default;
  SkiffdOptions options_;
  std::string root_, socket_, state_dir_, image_root_, log_;
  pid_t pid_ = -1;
  uint16_t ingress_port_ = 0, admin_port_ = 0;
  std::unique_ptr<v1::Agent::Stub> stub_;
};

// A gRPC status as an absl::Status of the same code, the message prefixed with `what`.
absl::Status FromGrpc(const grpc::Status& status, const std::string& what);

// Polls GetInstance until `id` is in state `want`. Reaching EXITED when something else
// was wanted ends the wait with FailedPrecondition (carrying the exit); DeadlineExceeded
// after `timeout`.
absl::StatusOr<v1::Instance> WaitForState(v1::Agent::Stub& stub, const std::string& id,
                                          v1::InstanceState want, absl::Duration timeout);

// Every log line of an instance so far (no follow), newline-terminated. Tagged: each line
// starts with "out:" or "err:" after its stream.
enum class LogFormat { kPlain, kTagged };
absl::StatusOr<std::string> ReadLogs(v1::Agent::Stub& stub, const std::string& id,
                                     LogFormat format = LogFormat::kPlain);

// A cgroup counter file's value (e.g. cpuacct.usage); NotFound naming the path if it cannot
// be read as a number.
absl::StatusOr<uint64_t> ReadCgroupCounter(const std::string& path);

// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
absl::StatusOr<uint16_t> FreeLoopbackPort();

// Paths of built binaries (from SKIFF_BUILD_DIR set by skiff_add_test).
std::string BuildPath(const std::string& rel);

}  // namespace skiff::testing
