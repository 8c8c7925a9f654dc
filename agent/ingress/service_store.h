#pragma once

// The services of this node on disk: one <dir>/<name>.pb (a skiff.v1.Service) per service,
// written atomically (temp file, fsync, rename) so a crash leaves the old or the new
// version, never half of one.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::ingress {

class ServiceStore {
 public:
  // Creates `dir` (mode 0700) if missing.
  static absl::StatusOr<ServiceStore> Open(std::string dir);

  struct Loaded {
    std::vector<v1::Service> services;  // sorted by name
    // Files that could not be read, parsed or validated, or whose name disagrees with
    // their content: one error each, naming the file. They stay where they are.
    std::vector<absl::Status> skipped;
  };
  // Every <name>.pb, each re-validated (NormalizeService). Fails only if `dir` cannot
  // be listed.
  absl::StatusOr<Loaded> Load() const;

  absl::Status Save(const v1::Service& service) const;
  // NotFound is OK.
  absl::Status Remove(const std::string& name) const;

  std::string PathOf(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  explicit ServiceStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace skiff::ingress
