#pragma once

// What an instance runs: the image config combined with the spec's overrides, by the
// Docker/OCI rules:
//   argv = (spec.command or image Entrypoint) + (spec.args, else image Cmd unless
//          spec.command was given — a new entrypoint drops the image's Cmd)
//   env  = image Env, then PATH (if the image has none), PORT, TASK_* for jobs, then
//          spec.env (sorted by key); a later key replaces an earlier one in place
//   cwd  = spec.working_dir or image WorkingDir or "/"
//   user = spec.user or image User, resolved in the image's /etc/passwd, /etc/group

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/image_store.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::agent {

inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct ResolvedProcess {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "K=V"
  std::string working_dir;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
};

// `spec` has had ApplySpecDefaults and ValidateSpec. Errors name the field
// (spec.command, spec.user, image config User, ...).
absl::StatusOr<ResolvedProcess> ResolveProcess(const v1::InstanceSpec& spec,
                                               const images::ImageConfig& image_config,
                                               const std::vector<std::string>& layer_dirs);

}  // namespace skiff::agent
