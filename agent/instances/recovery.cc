// InstanceController::Recover: rebuilds the table after an agent restart from
// <state_dir>/instances/*/ (instance.pb + config.pb + the shim's status.pb), reconnects
// to live shims and kills nothing.

#include <dirent.h>

#include "absl/strings/str_cat.h"
#include "agent/instances/instance_controller.h"
#include "agent/instances/instance_id.h"
#include "agent/instances/instance_record.h"
#include "agent/instances/instance_state.h"
#include "agent/instances/state_files.h"
#include "sandbox/common/status.h"

namespace skiff::agent {

absl::StatusOr<RecoveryReport> InstanceController::Recover() {
  RecoveryReport report;
  const std::string root = absl::StrCat(options_.state_dir, "/instances");
  DIR* d = opendir(root.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return report;
    return ErrnoStatus(errno, "opendir(", root, ")");
  }
  std::vector<std::string> ids;
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == ".." || e->d_type != DT_DIR) continue;
    ids.push_back(name);
  }
  closedir(d);
  for (const std::string& id : ids) {
    absl::Status st = RecoverOne(id, &report);
    if (!st.ok()) report.problems.push_back(absl::StrCat(root, "/", id, ": ", st.message()));
  }
  return report;
}

absl::Status InstanceController::RecoverOne(const std::string& id, RecoveryReport* report) {
  SKIFF_RETURN_IF_ERROR(ValidateInstanceId(id));
  auto rec = std::make_shared<Record>();
  rec->dir = InstanceDir(id);
  SKIFF_RETURN_IF_ERROR(ReadProtoFile(absl::StrCat(rec->dir, "/", kInstanceFile), &rec->instance));
  if (rec->instance.id() != id) {
    return absl::DataLossError(
        absl::StrCat(kInstanceFile, " names instance ", rec->instance.id(), ", not ", id));
  }
  v1::shim::ShimConfig config;
  absl::Status config_read = ReadProtoFile(absl::StrCat(rec->dir, "/", kConfigFile), &config);
  if (absl::IsNotFound(config_read) && !runtime_->Connect(rec->dir).ok()) {
    // skiffd died during CreateInstance before the shim was launched: nothing runs, and
    // nothing was reported created. Finish the rollback so the id is usable again.
    SKIFF_RETURN_IF_ERROR(RemoveStateDir(rec->dir));
    return absl::AbortedError("create was interrupted before launch; removed");
  }
  SKIFF_RETURN_IF_ERROR(config_read);
  rec->host_ip = config.host_ip();
  rec->cgroup_path = config.cgroup_path();
  // The file holds the instance as created; its live state comes from the shim.
  rec->instance.set_state(v1::CREATED);

  absl::StatusOr<std::unique_ptr<ShimConnection>> conn = runtime_->Connect(rec->dir);
  absl::StatusOr<v1::shim::ShimStatus> status =
      conn.ok() ? (*conn)->GetStatus() : absl::StatusOr<v1::shim::ShimStatus>(conn.status());
  const bool live = status.ok() && status->state() != v1::shim::EXITED;
  absl::Status cleanup;
  if (!live) {
    if (!status.ok() || status->state() != v1::shim::EXITED) {
      status = runtime_->ReadStatusFile(rec->dir);
    }
    if (!status.ok() || status->state() != v1::shim::EXITED) {
      // Lost: the shim is gone without recording an exit; remove what it left.
      cleanup = CleanUpLost(rec->dir, rec->cgroup_path);
    }
  }

  absl::MutexLock lock(&mu_);
  if (instances_.contains(id)) return absl::AlreadyExistsError("already in the table");
  if (live) {
    // Take the resources back: capacity, the IP pair, the image.
    allocated_.vcpus_milli += rec->instance.spec().vcpus_milli();
    allocated_.memory_bytes += rec->instance.spec().memory_bytes();
    if (absl::Status ip = ip_pool_->Reserve(rec->host_ip); !ip.ok()) {
      report->problems.push_back(absl::StrCat(rec->dir, ": ", ip.message()));
    }
    images_->AddUser(rec->instance.image_digest());
    rec->holds_resources = true;
    if (options_.cpu_throttle) {
      if (auto t = MakeThrottle(rec->instance.spec(), config.cgroup_path()); t.ok()) {
        rec->throttle = std::move(*t);
      } else {
        report->problems.push_back(absl::StrCat(rec->dir, ": ", t.status().message()));
      }
    }
    ApplyLocked(*rec, *status, /*publish=*/false);
    if (rec->throttle != nullptr && rec->instance.state() == v1::READY) {
      rec->throttle->Ready().IgnoreError();  // counted in its stats; retried on next change
    }
    rec->watch_conn = std::move(*conn);
    instances_[id] = rec;
    StartWatcherLocked(rec);
    ++report->running;
    return absl::OkStatus();
  }
  if (status.ok() && status->state() == v1::shim::EXITED) {
    ApplyLocked(*rec, *status, /*publish=*/false);
    ++report->exited;
  } else {
    ApplyLocked(*rec,
                LostStatus(absl::StrCat(
                    "shim gone at agent start without recording an exit",
                    cleanup.ok() ? "" : absl::StrCat("; cleanup failed: ", cleanup.message()))),
                /*publish=*/false);
    if (!cleanup.ok()) report->problems.push_back(absl::StrCat(rec->dir, ": ", cleanup.message()));
    ++report->lost;
  }
  instances_[id] = rec;
  return absl::OkStatus();
}

}  // namespace skiff::agent
