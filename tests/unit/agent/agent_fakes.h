#pragma once

// Fakes for the agent's seams: an InstanceRuntime whose "shims" are in-memory state
// machines driven by the test, and an ImageStore over temp-dir layers. Used by the
// agent's unit and integration tests.

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/instances/cri_log.h"
#include "agent/instances/runtime.h"
#include "agent/instances/state_files.h"
#include "images/image_store.h"
#include "sandbox/common/status.h"

namespace skiff::agent::testing {

// How a fake shim reacts to Stop.
enum class OnTerm { kExit, kIgnore };

class FakeShim {
 public:
  explicit FakeShim(v1::shim::ShimConfig config) : config_(std::move(config)) {}

  const v1::shim::ShimConfig& config() const { return config_; }

  void Set(v1::shim::ShimStatus status) {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
    ++version_;
  }
  v1::shim::ShimStatus status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  void MoveTo(v1::shim::State state) {
    absl::MutexLock lock(&mu_);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    status_.set_state(state);
    if (state == v1::shim::RUNNING) status_.set_started_unix_ns(now);
    if (state == v1::shim::READY) status_.set_ready_unix_ns(now);
    if (state == v1::shim::STOPPING) status_.set_stopping_unix_ns(now);
    ++version_;
  }
  void Exit(int code, int signal, v1::ExitReason reason) {
    absl::MutexLock lock(&mu_);
    status_.set_state(v1::shim::EXITED);
    status_.set_exit_code(code);
    status_.set_exit_signal(signal);
    status_.set_exit_reason(reason);
    status_.set_exited_unix_ns(absl::ToUnixNanos(absl::Now()));
    status_.set_pid(0);
    ++version_;
  }
  // The shim process vanishes (connections break). With `record_exit`, its last
  // status.pb says EXITED first.
  void Vanish() {
    absl::MutexLock lock(&mu_);
    gone_ = true;
  }
  bool gone() const {
    absl::MutexLock lock(&mu_);
    return gone_;
  }
  void set_on_term(OnTerm t) {
    absl::MutexLock lock(&mu_);
    on_term_ = t;
  }
  std::optional<absl::Duration> last_stop_grace() const {
    absl::MutexLock lock(&mu_);
    return last_grace_;
  }
  int stops() const {
    absl::MutexLock lock(&mu_);
    return stops_;
  }

  absl::Status Stop(std::optional<absl::Duration> grace) {
    absl::Duration effective;
    OnTerm on_term;
    {
      absl::MutexLock lock(&mu_);
      if (gone_) return absl::UnavailableError("fake shim gone");
      ++stops_;
      last_grace_ = grace;
      if (status_.state() == v1::shim::EXITED) return absl::OkStatus();
      effective = grace.value_or(absl::Milliseconds(config_.termination_grace_ms()));
      on_term = on_term_;
    }
    MoveTo(v1::shim::STOPPING);
    if (on_term == OnTerm::kExit) {
      Exit(0, 0, v1::STOPPED);
    } else {
      absl::MutexLock lock(&mu_);
      kill_at_ = absl::Now() + effective;
    }
    return absl::OkStatus();
  }

  // Blocks like the real Subscribe: current status first, then every change.
  absl::Status Subscribe(const std::function<void(const v1::shim::ShimStatus&)>& on_status,
                         const std::atomic<bool>& cancelled) {
    uint64_t seen = 0;
    for (;;) {
      v1::shim::ShimStatus st;
      {
        absl::MutexLock lock(&mu_);
        auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return version_ != seen || gone_ || cancelled.load() ||
                 (kill_at_.has_value() && absl::Now() >= *kill_at_);
        };
        mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(10));
        if (cancelled.load()) return absl::CancelledError("cancelled");
        if (gone_) return absl::UnavailableError("fake shim gone");
        if (kill_at_.has_value() && absl::Now() >= *kill_at_) {
          kill_at_.reset();
          status_.set_state(v1::shim::EXITED);
          status_.set_exit_code(-1);
          status_.set_exit_signal(9);
          status_.set_exit_reason(v1::KILLED);
          status_.set_exited_unix_ns(absl::ToUnixNanos(absl::Now()));
          ++version_;
        }
        if (version_ == seen) continue;
        seen = version_;
        st = status_;
      }
      on_status(st);
      if (st.state() == v1::shim::EXITED) return absl::OkStatus();
    }
  }

  void AppendLog(bool is_stderr, bool partial, const std::string& line) {
    CriRecord rec;
    rec.time = absl::Now();
    rec.is_stderr = is_stderr;
    rec.partial = partial;
    rec.line = line;
    std::ofstream out(config_.state_dir() + "/console.log", std::ios::app);
    out << FormatCriRecord(rec);
  }

 private:
  const v1::shim::ShimConfig config_;
  mutable absl::Mutex mu_;
  v1::shim::ShimStatus status_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 1;
  bool gone_ ABSL_GUARDED_BY(mu_) = false;
  OnTerm on_term_ ABSL_GUARDED_BY(mu_) = OnTerm::kExit;
  std::optional<absl::Time> kill_at_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Duration> last_grace_ ABSL_GUARDED_BY(mu_);
  int stops_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeConnection : public ShimConnection {
 public:
  explicit FakeConnection(std::shared_ptr<FakeShim> shim) : shim_(std::move(shim)) {}
  absl::StatusOr<v1::shim::ShimStatus> GetStatus() override {
    if (shim_->gone()) return absl::UnavailableError("fake shim gone");
    return shim_->status();
  }
  absl::Status Stop(std::optional<absl::Duration> grace) override { return shim_->Stop(grace); }
  absl::Status Subscribe(
      const std::function<void(const v1::shim::ShimStatus&)>& on_status) override {
    return shim_->Subscribe(on_status, cancelled_);
  }
  bool Cancel() override {
    cancelled_ = true;
    return true;
  }

 private:
  std::shared_ptr<FakeShim> shim_;
  std::atomic<bool> cancelled_{false};
};

class FakeRuntime : public InstanceRuntime {
 public:
  // The next Launch fails with this status (once).
  void FailNextLaunch(absl::Status st) {
    absl::MutexLock lock(&mu_);
    next_launch_error_ = std::move(st);
  }
  // New shims start in this state (RUNNING by default; READY for a quick service).
  void set_start_state(v1::shim::State s) {
    absl::MutexLock lock(&mu_);
    start_state_ = s;
  }

  // The next launched shim runs to completion and exits before anyone connects, leaving
  // `final_status` in its status file (a short job).
  void FinishOnNextLaunch(v1::shim::ShimStatus final_status) {
    absl::MutexLock lock(&mu_);
    finish_on_launch_ = std::move(final_status);
  }

  absl::Status Launch(const v1::shim::ShimConfig& config) override {
    absl::MutexLock lock(&mu_);
    ++launches_;
    if (!next_launch_error_.ok()) return std::exchange(next_launch_error_, absl::OkStatus());
    SKIFF_RETURN_IF_ERROR(WriteProtoFile(config.state_dir() + "/config.pb", config));
    auto shim = std::make_shared<FakeShim>(config);
    v1::shim::ShimStatus st;
    st.set_state(start_state_);
    st.set_shim_pid(1000 + launches_);
    st.set_pid(2000 + launches_);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    st.set_created_unix_ns(now);
    st.set_started_unix_ns(now);
    if (start_state_ == v1::shim::READY) st.set_ready_unix_ns(now);
    shim->Set(st);
    shims_[config.state_dir()] = shim;
    if (finish_on_launch_.has_value()) {
      file_status_[config.state_dir()] = *std::exchange(finish_on_launch_, std::nullopt);
      shim->Vanish();
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<ShimConnection>> Connect(const std::string& state_dir) override {
    absl::MutexLock lock(&mu_);
    auto it = shims_.find(state_dir);
    if (it == shims_.end() || it->second->gone()) {
      return absl::UnavailableError(absl::StrCat("connect(", state_dir, "/shim.sock): no shim"));
    }
    return std::unique_ptr<ShimConnection>(new FakeConnection(it->second));
  }
  absl::StatusOr<v1::shim::ShimStatus> ReadStatusFile(const std::string& state_dir) override {
    absl::MutexLock lock(&mu_);
    auto it = file_status_.find(state_dir);
    if (it == file_status_.end()) {
      return absl::NotFoundError(absl::StrCat(state_dir, "/status.pb: none"));
    }
    return it->second;
  }
  absl::StatusOr<std::unique_ptr<CpuQuota>> OpenCpuQuota(const std::string& cgroup_path) override {
    absl::MutexLock lock(&mu_);
    opened_quotas_.push_back(cgroup_path);
    UniqueFd fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
    return std::make_unique<CpuQuota>(std::move(fd), CgroupVersion::kV1, 100000);
  }
  absl::Status DestroyCgroup(const std::string& cgroup_path) override {
    absl::MutexLock lock(&mu_);
    destroyed_cgroups_.push_back(cgroup_path);
    return absl::OkStatus();
  }
  std::vector<std::string> destroyed_cgroups() const {
    absl::MutexLock lock(&mu_);
    return destroyed_cgroups_;
  }
  absl::StatusOr<bool> HostLinkExists(const std::string& name) override {
    absl::MutexLock lock(&mu_);
    return taken_links_.count(name) > 0;
  }
  void AddHostLink(const std::string& name) {
    absl::MutexLock lock(&mu_);
    taken_links_.insert(name);
  }
  std::string cgroup_version() const override { return "v1"; }

  std::shared_ptr<FakeShim> shim(const std::string& state_dir) {
    absl::MutexLock lock(&mu_);
    auto it = shims_.find(state_dir);
    return it == shims_.end() ? nullptr : it->second;
  }
  // The shim vanishes; with `final_status`, that is what its status.pb says.
  void Vanish(const std::string& state_dir, std::optional<v1::shim::ShimStatus> final_status) {
    std::shared_ptr<FakeShim> s = shim(state_dir);
    absl::MutexLock lock(&mu_);
    if (final_status.has_value()) file_status_[state_dir] = *final_status;
    if (s) s->Vanish();
  }
  int launches() const {
    absl::MutexLock lock(&mu_);
    return launches_;
  }
  std::vector<std::string> opened_quotas() const {
    absl::MutexLock lock(&mu_);
    return opened_quotas_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status next_launch_error_ ABSL_GUARDED_BY(mu_);
  v1::shim::State start_state_ ABSL_GUARDED_BY(mu_) = v1::shim::RUNNING;
  std::optional<v1::shim::ShimStatus> finish_on_launch_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<FakeShim>> shims_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::shim::ShimStatus> file_status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> opened_quotas_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> destroyed_cgroups_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> taken_links_ ABSL_GUARDED_BY(mu_);
  int launches_ ABSL_GUARDED_BY(mu_) = 0;
};

// An image store over layer dirs in a temp dir. "Registry" images are added with
// AddRemote; Pull copies them into the cache.
class FakeImageStore : public images::ImageStore {
 public:
  explicit FakeImageStore(std::string root) : root_(std::move(root)) {}

  // Adds a pullable image with one layer holding `files` (path → content).
  images::Image AddRemote(const std::string& ref, images::ImageConfig config,
                          const std::map<std::string, std::string>& files) {
    absl::MutexLock lock(&mu_);
    images::Image img;
    img.manifest_digest = absl::StrCat("sha256:", std::string(60, 'a'), 1000 + remote_.size());
    img.references = {ref};
    img.config = std::move(config);
    const std::string layer = absl::StrCat(root_, "/layer", remote_.size());
    std::filesystem::create_directories(layer);
    for (const auto& [path, content] : files) {
      std::filesystem::create_directories(std::filesystem::path(layer + "/" + path).parent_path());
      std::ofstream(layer + "/" + path) << content;
    }
    img.layer_dirs = {layer};
    img.size_bytes = 1234;
    img.pulled_unix_s = 1700000000;
    remote_[ref] = img;
    return img;
  }

  absl::StatusOr<images::Image> Pull(
      const std::string& ref,
      const std::function<void(const images::PullProgress&)>& progress) override {
    if (ref.find_first_of(" ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("reference \"", ref, "\": invalid"));
    }
    if (ref.rfind("unreachable.invalid/", 0) == 0) {
      return absl::UnavailableError(absl::StrCat("reference ", ref, ": registry unreachable"));
    }
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      delay = pull_delay_;
    }
    absl::SleepFor(delay);
    images::Image img;
    {
      absl::MutexLock lock(&mu_);
      ++pulls_;
      auto it = remote_.find(ref);
      if (it == remote_.end()) {
        return absl::NotFoundError(absl::StrCat("reference ", ref, ": manifest unknown"));
      }
      img = it->second;
    }
    images::PullProgress p;
    p.phase = "resolving";
    progress(p);
    p.phase = "fetching";
    p.manifest_digest = img.manifest_digest;
    p.total_bytes = img.size_bytes;
    p.layers_total = 1;
    progress(p);
    p.done_bytes = img.size_bytes;
    p.layers_done = 1;
    p.phase = "unpacking";
    progress(p);
    if (report_done_) {
      p.phase = "done";
      progress(p);
    }
    absl::MutexLock lock(&mu_);
    cached_[ref] = img;
    return img;
  }
  absl::StatusOr<images::Image> Get(const std::string& ref) override {
    absl::MutexLock lock(&mu_);
    for (const auto& [r, img] : cached_) {
      if (r == ref || img.manifest_digest == ref) return img;
    }
    return absl::NotFoundError(absl::StrCat("image ", ref, ": not pulled"));
  }
  std::vector<images::Image> List() override {
    absl::MutexLock lock(&mu_);
    std::vector<images::Image> out;
    for (const auto& [r, img] : cached_) out.push_back(img);
    return out;
  }
  absl::Status Remove(const std::string& ref) override {
    absl::MutexLock lock(&mu_);
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      if (it->first == ref || it->second.manifest_digest == ref) {
        if (users_[it->second.manifest_digest] > 0) {
          return absl::FailedPreconditionError(absl::StrCat("image ", ref, ": in use"));
        }
        cached_.erase(it);
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(absl::StrCat("image ", ref, ": not pulled"));
  }
  void AddUser(const std::string& digest) override {
    absl::MutexLock lock(&mu_);
    ++users_[digest];
  }
  void RemoveUser(const std::string& digest) override {
    absl::MutexLock lock(&mu_);
    --users_[digest];
  }
  int users(const std::string& digest) {
    absl::MutexLock lock(&mu_);
    return users_[digest];
  }
  // Whether Pull reports a final "done" itself (the real store does).
  void set_report_done(bool b) { report_done_ = b; }
  void set_pull_delay(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    pull_delay_ = d;
  }
  int pulls() {
    absl::MutexLock lock(&mu_);
    return pulls_;
  }

 private:
  const std::string root_;
  absl::Mutex mu_;
  std::map<std::string, images::Image> remote_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, images::Image> cached_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> users_ ABSL_GUARDED_BY(mu_);
  int pulls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration pull_delay_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> report_done_{false};
};

// A temp dir removed (recursively) at destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/skiff-agent-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace skiff::agent::testing
