#include "agent/instances/instance_controller.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "agent/instances/instance_id.h"
#include "agent/instances/instance_record.h"
#include "agent/instances/instance_state.h"
#include "agent/instances/label_selector.h"
#include "agent/instances/process.h"
#include "agent/instances/spec_defaults.h"
#include "agent/instances/state_files.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "sandbox/common/status.h"

namespace skiff::agent {
namespace {

using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;

// Upper bound on how long Stop waits beyond the grace period for the exit.
constexpr absl::Duration kStopSlack = absl::Seconds(30);

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("instance_id: ", id, " not found"));
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "mkdir(", path, ")");
  }
  return absl::OkStatus();
}

}  // namespace

InstanceController::InstanceController(ControllerOptions options, images::ImageStore* images,
                                       InstanceRuntime* runtime, IpPool* ip_pool, EventBus* events)
    : options_(std::move(options)),
      images_(images),
      runtime_(runtime),
      ip_pool_(ip_pool),
      events_(events) {}

InstanceController::~InstanceController() { Shutdown(); }

void InstanceController::Shutdown() {
  // Each watcher thread object is moved out under mu_, so exactly one caller (this or
  // Delete) joins it.
  std::vector<std::pair<std::shared_ptr<Record>, std::thread>> watchers;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [id, rec] : instances_) {
      if (rec->watcher.joinable()) watchers.emplace_back(rec, std::move(rec->watcher));
    }
  }
  for (auto& [rec, thread] : watchers) {
    if (rec->watch_conn != nullptr && rec->watch_conn->Cancel()) {
      thread.join();
    } else {
      thread.detach();  // blocked in a shim read; ends with the process
    }
  }
}

std::string InstanceController::InstanceDir(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/instances/", id);
}

Resources InstanceController::FreeLocked() const {
  Resources free;
  free.vcpus_milli = options_.capacity.vcpus_milli > allocated_.vcpus_milli
                         ? options_.capacity.vcpus_milli - allocated_.vcpus_milli
                         : 0;
  free.memory_bytes = options_.capacity.memory_bytes > allocated_.memory_bytes
                          ? options_.capacity.memory_bytes - allocated_.memory_bytes
                          : 0;
  return free;
}

absl::StatusOr<v1::Instance> InstanceController::Create(std::string id, v1::InstanceSpec spec) {
  if (id.empty()) id = GenerateInstanceId();
  SKIFF_RETURN_IF_ERROR(ValidateInstanceId(id));
  ApplySpecDefaults(&spec);
  SKIFF_RETURN_IF_ERROR(ValidateSpec(spec));
  if (spec.generation() == v1::GEN2 &&
      (options_.gen2_kernel.empty() || options_.gen2_initramfs.empty() ||
       options_.gen2_vmm.empty())) {
    return absl::FailedPreconditionError(
        "spec.generation: GEN2 needs skiffd started with --gen2-kernel and --gen2-initramfs "
        "(scripts/guest-kernel.sh builds them) and a skiff-vmm binary");
  }

  // Idempotency and capacity, then reserve the id and the resources.
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::UnavailableError("agent is shutting down");
    if (auto it = instances_.find(id); it != instances_.end()) {
      if (MessageDifferencer::Equals(it->second->instance.spec(), spec)) {
        return it->second->instance;
      }
      return absl::AlreadyExistsError(
          absl::StrCat("instance_id: ", id, " already exists with a different spec"));
    }
    if (auto it = pending_.find(id); it != pending_.end()) {
      if (MessageDifferencer::Equals(it->second, spec)) {
        return absl::UnavailableError(
            absl::StrCat("instance_id: ", id, " is being created; retry to get it"));
      }
      return absl::AlreadyExistsError(
          absl::StrCat("instance_id: ", id, " is being created with a different spec"));
    }
    SKIFF_RETURN_IF_ERROR(CheckCapacity(spec, FreeLocked()));
    allocated_.vcpus_milli += spec.vcpus_milli();
    allocated_.memory_bytes += spec.memory_bytes();
    pending_[id] = spec;
  }
  bool reservation_owned = true;  // until the record takes the resources over
  absl::Cleanup unreserve = [&] {
    absl::MutexLock lock(&mu_);
    pending_.erase(id);
    if (reservation_owned) {
      allocated_.vcpus_milli -= spec.vcpus_milli();
      allocated_.memory_bytes -= spec.memory_bytes();
    }
  };

  // Image: cached, or pulled now.
  absl::StatusOr<images::Image> image = images_->Get(spec.image());
  if (!image.ok() && absl::IsNotFound(image.status())) {
    image = images_->Pull(spec.image(), [](const images::PullProgress&) {});
  }
  if (!image.ok()) return Annotate(image.status(), "spec.image");
  images_->AddUser(image->manifest_digest);
  absl::Cleanup unuse_image = [&] { images_->RemoveUser(image->manifest_digest); };

  SKIFF_ASSIGN_OR_RETURN(ResolvedProcess process,
                         ResolveProcess(spec, image->config, image->layer_dirs));
  SKIFF_ASSIGN_OR_RETURN(IpPair ip, AllocateFreePair());
  absl::Cleanup release_ip = [&] { ip_pool_->Release(ip.host_ip); };

  // State dir.
  const std::string dir = InstanceDir(id);
  SKIFF_RETURN_IF_ERROR(MakeDir(options_.state_dir));
  SKIFF_RETURN_IF_ERROR(MakeDir(absl::StrCat(options_.state_dir, "/instances")));
  if (mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat("instance_id: ", id, ": state dir ", dir,
                                                        " exists from an earlier instance"));
    }
    return ErrnoStatus(errno, "mkdir(", dir, ")");
  }
  absl::Cleanup remove_dir = [&] { RemoveStateDir(dir).IgnoreError(); };

  v1::Instance instance;
  instance.set_id(id);
  *instance.mutable_spec() = spec;
  instance.set_state(v1::CREATED);
  instance.set_image_digest(image->manifest_digest);
  instance.set_ip(ip.instance_ip);
  instance.set_port(spec.port());
  *instance.mutable_created_at() = NowTimestamp();
  SKIFF_RETURN_IF_ERROR(WriteProtoFile(absl::StrCat(dir, "/", kInstanceFile), instance));

  v1::shim::ShimConfig config;
  config.set_instance_id(id);
  config.set_state_dir(dir);
  config.set_generation(spec.generation() == v1::GEN2 ? 2 : 1);
  for (const auto& d : image->layer_dirs) config.add_lower_dirs(d);
  for (const auto& a : process.argv) config.add_argv(a);
  for (const auto& e : process.env) config.add_env(e);
  config.set_working_dir(process.working_dir);
  config.set_uid(process.uid);
  config.set_gid(process.gid);
  for (gid_t g : process.additional_gids) config.add_additional_gids(g);
  config.set_hostname(id);
  config.set_vcpus_milli(spec.vcpus_milli());
  config.set_memory_bytes(spec.memory_bytes());
  config.set_pids_limit(options_.pids_limit);
  config.set_cgroup_path(absl::StrCat(options_.cgroup_parent, "/", id));
  config.set_host_veth(ip.host_veth);
  config.set_host_ip(ip.host_ip);
  config.set_instance_ip(ip.instance_ip);
  config.set_prefix_len(ip.prefix_len);
  config.set_is_job(spec.kind() == v1::JOB);
  config.set_port(spec.port());
  config.set_startup_timeout_ms(absl::ToInt64Milliseconds(ToAbsl(spec.startup_timeout())));
  config.set_termination_grace_ms(absl::ToInt64Milliseconds(ToAbsl(spec.termination_grace())));
  if (spec.generation() == v1::GEN2) {
    config.mutable_gen2()->set_vmm_path(options_.gen2_vmm);
    config.mutable_gen2()->set_kernel_path(options_.gen2_kernel);
    config.mutable_gen2()->set_initramfs_path(options_.gen2_initramfs);
  }

  SKIFF_RETURN_IF_ERROR(Annotate(runtime_->Launch(config), absl::StrCat("start instance ", id)));

  // The shim runs: from here a failure must stop it before unwinding.
  absl::StatusOr<std::unique_ptr<ShimConnection>> conn = runtime_->Connect(dir);
  absl::StatusOr<v1::shim::ShimStatus> status =
      conn.ok() ? (*conn)->GetStatus() : absl::StatusOr<v1::shim::ShimStatus>(conn.status());
  if (!status.ok()) {
    // A short job may have finished and its shim exited already: its file says so.
    absl::StatusOr<v1::shim::ShimStatus> recorded = runtime_->ReadStatusFile(dir);
    if (recorded.ok() && recorded->state() == v1::shim::EXITED) status = std::move(recorded);
  }
  std::shared_ptr<ingress::CpuThrottle> throttle;
  if (status.ok() && status->state() != v1::shim::EXITED && options_.cpu_throttle) {
    absl::StatusOr<std::shared_ptr<ingress::CpuThrottle>> t =
        MakeThrottle(spec, config.cgroup_path());
    if (t.ok()) {
      throttle = std::move(*t);
    } else {
      status = Annotate(t.status(), absl::StrCat("instance ", id, ": cpu throttle"));
    }
  }
  if (!status.ok()) {
    if (conn.ok()) StopAndWait(conn->get());
    return Annotate(status.status(), absl::StrCat("start instance ", id));
  }

  // Hand everything over to the table.
  auto rec = std::make_shared<Record>();
  rec->instance = std::move(instance);
  rec->dir = dir;
  rec->host_ip = ip.host_ip;
  rec->cgroup_path = config.cgroup_path();
  rec->holds_resources = true;
  rec->throttle = std::move(throttle);
  if (conn.ok()) rec->watch_conn = std::move(*conn);
  std::move(unuse_image).Cancel();
  std::move(release_ip).Cancel();
  std::move(remove_dir).Cancel();

  absl::MutexLock lock(&mu_);
  reservation_owned = false;
  std::move(unreserve).Cancel();
  pending_.erase(id);
  instances_[id] = rec;
  v1::Event created;
  created.set_type(v1::Event::CREATED);
  created.set_instance_id(id);
  *created.mutable_time() = rec->instance.created_at();
  events_->Publish(created);
  ApplyLocked(*rec, *status, /*publish=*/true);
  const v1::Instance result = rec->instance;
  StartWatcherLocked(rec);
  return result;
}

absl::StatusOr<IpPair> InstanceController::AllocateFreePair() {
  // A pair whose veth name already exists on the host belongs to someone else (another
  // agent on the same pool, or a leak): it stays reserved and the next one is tried.
  constexpr int kMaxTries = 16;
  for (int i = 0; i < kMaxTries; ++i) {
    SKIFF_ASSIGN_OR_RETURN(IpPair ip, ip_pool_->Allocate());
    absl::StatusOr<bool> taken = runtime_->HostLinkExists(ip.host_veth);
    if (!taken.ok()) {
      ip_pool_->Release(ip.host_ip);
      return Annotate(taken.status(), absl::StrCat("ip_pool: check ", ip.host_veth));
    }
    if (!*taken) return ip;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("ip_pool: ", kMaxTries, " pairs in a row have their veth taken on the host"));
}

void InstanceController::StopAndWait(ShimConnection* conn) {
  if (!conn->Stop(absl::ZeroDuration()).ok()) return;
  conn->Subscribe([](const v1::shim::ShimStatus&) {}).IgnoreError();
}

void InstanceController::ApplyLocked(Record& rec, const v1::shim::ShimStatus& status,
                                     bool publish) {
  const v1::InstanceState before = rec.instance.state();
  std::vector<v1::Event> events = ApplyShimStatus(status, &rec.instance);
  if (rec.throttle != nullptr && before != v1::READY && rec.instance.state() == v1::READY) {
    // A failed write is counted in the throttle's stats (and exported as a metric); the
    // next transition retries it.
    rec.throttle->Ready().IgnoreError();
  }
  if (publish) {
    for (auto& e : events) events_->Publish(std::move(e));
  }
  if (rec.instance.state() == v1::EXITED) ReleaseLocked(rec);
}

void InstanceController::ReleaseLocked(Record& rec) {
  rec.throttle.reset();
  if (!rec.holds_resources) return;
  rec.holds_resources = false;
  allocated_.vcpus_milli -= rec.instance.spec().vcpus_milli();
  allocated_.memory_bytes -= rec.instance.spec().memory_bytes();
  ip_pool_->Release(rec.host_ip);
  images_->RemoveUser(rec.instance.image_digest());
}

void InstanceController::StartWatcherLocked(std::shared_ptr<Record> rec) {
  if (rec->watch_conn == nullptr || rec->instance.state() == v1::EXITED) return;
  rec->watcher = std::thread([this, rec] { Watch(rec); });
}

void InstanceController::Watch(std::shared_ptr<Record> rec) {
  absl::Status st = rec->watch_conn->Subscribe([&](const v1::shim::ShimStatus& status) {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    ApplyLocked(*rec, status, /*publish=*/true);
  });
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_ || rec->instance.state() == v1::EXITED) return;
  }
  // The shim went away before reporting EXITED on this connection: trust its file.
  absl::StatusOr<v1::shim::ShimStatus> final_status = runtime_->ReadStatusFile(rec->dir);
  absl::Status cleanup;
  if (!final_status.ok() || final_status->state() != v1::shim::EXITED) {
    // Nobody supervises what it left: remove it before the IP pair can be reused.
    cleanup = CleanUpLost(rec->dir, rec->cgroup_path);
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_ || rec->instance.state() == v1::EXITED) return;
  if (final_status.ok() && final_status->state() == v1::shim::EXITED) {
    ApplyLocked(*rec, *final_status, /*publish=*/true);
  } else {
    ApplyLocked(
        *rec,
        LostStatus(absl::StrCat(
            "shim went away without recording an exit: ", st.ok() ? "stream ended" : st.message(),
            cleanup.ok() ? "" : absl::StrCat("; cleanup failed: ", cleanup.message()))),
        /*publish=*/true);
  }
}

absl::Status InstanceController::CleanUpLost(const std::string& dir,
                                             const std::string& cgroup_path) {
  absl::Status st;
  if (!cgroup_path.empty()) {
    st.Update(Annotate(runtime_->DestroyCgroup(cgroup_path), absl::StrCat("cgroup ", cgroup_path)));
  }
  st.Update(RemoveStateDir(absl::StrCat(dir, "/rootfs")));
  return st;
}

absl::StatusOr<std::shared_ptr<ingress::CpuThrottle>> InstanceController::MakeThrottle(
    const v1::InstanceSpec& spec, const std::string& cgroup_path) {
  SKIFF_ASSIGN_OR_RETURN(std::unique_ptr<CpuQuota> quota, runtime_->OpenCpuQuota(cgroup_path));
  ingress::CpuThrottleOptions topts;
  topts.vcpus_milli = spec.vcpus_milli();
  topts.cpu_allocation = spec.cpu_allocation() == v1::INSTANCE ? ingress::CpuAllocation::kInstance
                                                               : ingress::CpuAllocation::kRequest;
  topts.startup_cpu_boost = spec.startup_cpu_boost();
  topts.floor_cpu_bp = options_.cpu_floor_bp;
  SKIFF_ASSIGN_OR_RETURN(std::unique_ptr<ingress::CpuThrottle> throttle,
                         ingress::CpuThrottle::Create(std::move(*quota), topts));
  return std::shared_ptr<ingress::CpuThrottle>(std::move(throttle));
}

std::shared_ptr<ingress::CpuThrottle> InstanceController::Throttle(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(id);
  return it == instances_.end() ? nullptr : it->second->throttle;
}

void InstanceController::SetDrainHook(DrainHook hook) { drain_hook_ = std::move(hook); }

absl::StatusOr<v1::Instance> InstanceController::Stop(const std::string& id,
                                                      std::optional<absl::Duration> grace) {
  std::shared_ptr<Record> rec;
  absl::Duration effective_grace;
  v1::Instance rec_snapshot;
  std::shared_ptr<ingress::CpuThrottle> throttle;
  {
    absl::MutexLock lock(&mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) return NotFound(id);
    rec = it->second;
    if (rec->instance.state() == v1::EXITED) return rec->instance;
    effective_grace = grace.value_or(ToAbsl(rec->instance.spec().termination_grace()));
    rec_snapshot = rec->instance;
    throttle = rec->throttle;
  }
  if (drain_hook_) {
    // The ingress stops routing to it and lets its requests finish, within the grace period;
    // SIGTERM gets what is left of it.
    const absl::Time deadline = absl::Now() + effective_grace;
    drain_hook_(rec_snapshot, deadline);
    effective_grace = std::max(absl::ZeroDuration(), deadline - absl::Now());
    grace = effective_grace;
  }
  if (throttle != nullptr) {
    // Full CPU for the shutdown: an app throttled to the idle floor would spend its grace
    // period just getting scheduled. A failed write is counted in the throttle's stats.
    throttle->Stopping().IgnoreError();
  }
  absl::StatusOr<std::unique_ptr<ShimConnection>> conn = runtime_->Connect(rec->dir);
  absl::Status sent = conn.ok() ? (*conn)->Stop(grace) : conn.status();

  absl::MutexLock lock(&mu_);
  auto exited = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return rec->instance.state() == v1::EXITED || shutting_down_;
  };
  // Without a shim to ask, the watcher settles the instance (exit file or LOST) soon.
  const absl::Duration wait = sent.ok() ? effective_grace + kStopSlack : absl::Seconds(5);
  if (!mu_.AwaitWithTimeout(absl::Condition(&exited), wait) || shutting_down_) {
    if (!sent.ok()) return Annotate(sent, absl::StrCat("stop instance ", id));
    return absl::DeadlineExceededError(
        absl::StrCat("stop instance ", id, ": not exited after ", absl::FormatDuration(wait)));
  }
  return rec->instance;
}

absl::Status InstanceController::Delete(const std::string& id, bool force) {
  std::shared_ptr<Record> rec;
  std::thread watcher;
  {
    absl::MutexLock lock(&mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) return NotFound(id);
    if (it->second->instance.state() != v1::EXITED && !force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "instance_id: ", id, " is ", v1::InstanceState_Name(it->second->instance.state()),
          "; stop it first or delete with force"));
    }
  }
  if (force) SKIFF_RETURN_IF_ERROR(Stop(id, absl::ZeroDuration()).status());
  {
    absl::MutexLock lock(&mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) return NotFound(id);
    if (it->second->instance.state() != v1::EXITED) {
      return absl::FailedPreconditionError(absl::StrCat("instance_id: ", id, " is not exited"));
    }
    rec = it->second;
    instances_.erase(it);
    watcher = std::move(rec->watcher);
  }
  if (watcher.joinable()) watcher.join();
  absl::Status removed = RemoveStateDir(rec->dir);
  if (!removed.ok()) {
    // Keep it listed (and deletable again) rather than forgetting a dir we could not remove.
    absl::MutexLock lock(&mu_);
    instances_.try_emplace(id, rec);
  }
  return Annotate(removed, absl::StrCat("delete instance ", id));
}

absl::StatusOr<v1::Instance> InstanceController::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(id);
  if (it == instances_.end()) return NotFound(id);
  return it->second->instance;
}

absl::StatusOr<std::vector<v1::Instance>> InstanceController::List(
    const std::string& label_selector) const {
  SKIFF_ASSIGN_OR_RETURN(LabelSelector selector, LabelSelector::Parse(label_selector));
  std::vector<v1::Instance> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, rec] : instances_) {
      if (selector.Matches(rec->instance.spec().labels())) out.push_back(rec->instance);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const v1::Instance& a, const v1::Instance& b) { return a.id() < b.id(); });
  return out;
}

v1::Node InstanceController::GetNode() const {
  v1::Node node;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) node.set_hostname(host);
  node.set_vcpus_milli_capacity(options_.capacity.vcpus_milli);
  node.set_memory_bytes_capacity(options_.capacity.memory_bytes);
  node.set_cgroup_version(runtime_->cgroup_version());
  node.set_version(options_.version);
  absl::MutexLock lock(&mu_);
  node.set_vcpus_milli_allocated(allocated_.vcpus_milli);
  node.set_memory_bytes_allocated(allocated_.memory_bytes);
  node.set_instances_total(static_cast<uint32_t>(instances_.size()));
  for (const auto& [id, rec] : instances_) {
    (*node.mutable_instances_by_state())[v1::InstanceState_Name(rec->instance.state())]++;
  }
  return node;
}

absl::StatusOr<std::string> InstanceController::ConsoleLogPath(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(id);
  if (it == instances_.end()) return NotFound(id);
  return absl::StrCat(it->second->dir, "/", kConsoleLog);
}

bool InstanceController::WaitForExit(const std::string& id, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = instances_.find(id);
    return it == instances_.end() || it->second->instance.state() == v1::EXITED || shutting_down_;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

}  // namespace skiff::agent
