#include "agent/instances/process.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "agent/instances/image_user.h"
#include "sandbox/common/status.h"

namespace skiff::agent {
namespace {

// Ordered "K=V" list where setting an existing key replaces its value in place.
class EnvList {
 public:
  void Set(const std::string& key, const std::string& value) {
    for (auto& entry : entries_) {
      if (entry.first == key) {
        entry.second = value;
        return;
      }
    }
    entries_.emplace_back(key, value);
  }
  bool Has(const std::string& key) const {
    for (const auto& entry : entries_) {
      if (entry.first == key) return true;
    }
    return false;
  }
  std::vector<std::string> ToStrings() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& [k, v] : entries_) out.push_back(absl::StrCat(k, "=", v));
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

}  // namespace

absl::StatusOr<ResolvedProcess> ResolveProcess(const v1::InstanceSpec& spec,
                                               const images::ImageConfig& image_config,
                                               const std::vector<std::string>& layer_dirs) {
  ResolvedProcess out;

  // argv.
  if (spec.command_size() > 0) {
    out.argv.assign(spec.command().begin(), spec.command().end());
  } else {
    out.argv = image_config.entrypoint;
  }
  if (spec.args_size() > 0) {
    out.argv.insert(out.argv.end(), spec.args().begin(), spec.args().end());
  } else if (spec.command_size() == 0) {
    out.argv.insert(out.argv.end(), image_config.cmd.begin(), image_config.cmd.end());
  }
  if (out.argv.empty()) {
    return absl::InvalidArgumentError(
        "spec.command: the image has no Entrypoint or Cmd and the spec gives none");
  }
  if (out.argv[0].empty()) {
    return absl::InvalidArgumentError(spec.command_size() > 0
                                          ? "spec.command[0]: must not be empty"
                                          : "image config Entrypoint/Cmd: program name is empty");
  }

  // env.
  EnvList env;
  for (const std::string& kv : image_config.env) {
    const size_t eq = kv.find('=');
    if (eq == 0 || kv.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("image config Env: malformed entry \"", kv.substr(0, 64), "\""));
    }
    if (eq == std::string::npos) {
      env.Set(kv, "");
    } else {
      env.Set(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  if (!env.Has("PATH")) env.Set("PATH", kDefaultPath);
  env.Set("PORT", absl::StrCat(spec.port()));
  if (spec.kind() == v1::JOB) {
    env.Set("TASK_INDEX", absl::StrCat(spec.task_index()));
    env.Set("TASK_COUNT", absl::StrCat(spec.task_count() == 0 ? 1 : spec.task_count()));
    env.Set("TASK_ATTEMPT", absl::StrCat(spec.task_attempt()));
  }
  const std::map<std::string, std::string> sorted(spec.env().begin(), spec.env().end());
  for (const auto& [k, v] : sorted) env.Set(k, v);
  out.env = env.ToStrings();

  // cwd.
  if (!spec.working_dir().empty()) {
    out.working_dir = spec.working_dir();
  } else if (!image_config.working_dir.empty()) {
    if (image_config.working_dir.front() != '/') {
      return absl::InvalidArgumentError(absl::StrCat("image config WorkingDir: \"",
                                                     image_config.working_dir.substr(0, 64),
                                                     "\" is not absolute"));
    }
    out.working_dir = image_config.working_dir;
  } else {
    out.working_dir = "/";
  }

  // user.
  const bool from_spec = !spec.user().empty();
  SKIFF_ASSIGN_OR_RETURN(ResolvedUser user,
                         ResolveImageUser(from_spec ? spec.user() : image_config.user, layer_dirs,
                                          from_spec ? "spec.user" : "image config User"));
  out.uid = user.uid;
  out.gid = user.gid;
  out.additional_gids = std::move(user.additional_gids);
  return out;
}

}  // namespace skiff::agent
