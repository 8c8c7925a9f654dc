#include "agent/ingress/activator.h"

#include <algorithm>
#include <atomic>
#include <list>
#include <map>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/ingress/service_store.h"
#include "agent/ingress/service_validation.h"
#include "sandbox/common/status.h"

namespace skiff::ingress {
namespace {

// The control thread's period: idle scale-down, min_instances, deleting exited instances.
constexpr absl::Duration kTick = absl::Seconds(1);
// After a failed start (Create failed, or the instance exited before Ready) the next start
// waits 1 s, doubling with each further failure up to 30 s, until one becomes Ready.
// Meanwhile a service with nothing live answers its queued requests with the failure.
constexpr absl::Duration kStartBackoff = absl::Seconds(1);
constexpr absl::Duration kMaxStartBackoff = absl::Seconds(30);

absl::Duration StartBackoff(uint32_t failures) {
  if (failures == 0) return absl::ZeroDuration();
  return std::min(kMaxStartBackoff, kStartBackoff * (int64_t{1} << std::min(failures - 1, 5u)));
}
constexpr char kIdAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

std::string NewInstanceId(const std::string& service) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = absl::StrCat(service, "-");
  for (int i = 0; i < 5; ++i) id.push_back(kIdAlphabet[rng() % (sizeof(kIdAlphabet) - 1)]);
  return id;
}

uint32_t Desired(const v1::Service& s, const PoolStats& st) {
  const uint64_t load = uint64_t{st.in_flight} + st.queued;
  const uint64_t per = std::max<uint32_t>(1, s.template_().concurrency());
  const uint64_t want = (load + per - 1) / per;
  return static_cast<uint32_t>(std::clamp<uint64_t>(
      want, s.min_instances(), std::max(s.min_instances(), s.max_instances())));
}

PoolOptions OptionsOf(const v1::Service& s) {
  PoolOptions o;
  o.max_queue = s.max_queue();
  o.queue_timeout = FromProto(s.queue_timeout());
  return o;
}

class Activator final : public ServiceActivator {
 public:
  Activator(ServiceStore store, ServiceRouter* router, InstanceLauncher* launcher,
            MetricsRegistry* metrics)
      : store_(std::move(store)), router_(router), launcher_(launcher) {
    anchor_->self = this;
    if (metrics != nullptr) {
      cold_starts_ =
          metrics->AddCounter("skiff_ingress_cold_starts_total",
                              "Instances started on demand that became Ready.", {"service"});
      cold_start_seconds_ =
          metrics->AddHistogram("skiff_ingress_cold_start_seconds",
                                "From starting an instance on demand to its Ready, in seconds.",
                                {"service"}, MetricsRegistry::LatencyBuckets());
    }
  }

  ~Activator() override {
    {
      absl::MutexLock lock(&anchor_->mu);
      anchor_->self = nullptr;  // pools' demand listeners no longer reach us
    }
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (control_.joinable()) control_.join();
    std::list<Worker> workers;
    {
      absl::MutexLock lock(&workers_mu_);
      workers.swap(workers_);
    }
    for (Worker& w : workers) w.thread.join();
  }

  void Start(std::vector<v1::Service> services, std::vector<absl::Status> load_errors) {
    {
      absl::MutexLock lock(&mu_);
      load_errors_ = std::move(load_errors);
    }
    for (v1::Service& s : services) {
      const std::string name = s.name();
      Install(std::move(s));
      Reconcile(name);
    }
    control_ = std::thread([this] { ControlLoop(); });
  }

  absl::StatusOr<v1::Service> Put(v1::Service service) override {
    SKIFF_ASSIGN_OR_RETURN(v1::Service s, NormalizeService(std::move(service)));
    absl::MutexLock admin(&admin_mu_);
    SKIFF_RETURN_IF_ERROR(store_.Save(s));
    Install(s);
    Reconcile(s.name());
    return s;
  }

  absl::Status Delete(const std::string& name) override {
    SKIFF_RETURN_IF_ERROR(ValidateServiceName(name));
    absl::MutexLock admin(&admin_mu_);
    {
      absl::MutexLock lock(&mu_);
      auto it = services_.find(name);
      if (it == services_.end()) {
        return absl::NotFoundError(absl::StrCat("service ", name, ": not found"));
      }
      it->second.deleting = true;  // no more starts; Ready/exit reports are ignored
    }
    router_->DeleteService(name);  // queued requests get 503
    {
      // Starts under way finish first, so that the list below has them.
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Entry* e) { return e->creating == 0; }, &services_.find(name)->second));
    }
    std::vector<std::string> ids;
    for (const v1::Instance& inst : launcher_->ListLive(name)) ids.push_back(inst.id());
    std::vector<absl::Status> results(ids.size());
    {
      std::vector<std::thread> stoppers;
      for (size_t i = 0; i < ids.size(); ++i) {
        stoppers.emplace_back([this, &ids, &results, i] {
          results[i] = Annotate(launcher_->StopAndDelete(ids[i]), absl::StrCat("stop ", ids[i]));
        });
      }
      for (std::thread& t : stoppers) t.join();
    }
    {
      absl::MutexLock lock(&mu_);
      services_.erase(name);
    }
    // The service is gone either way; an instance that could not be stopped is reported.
    absl::Status removed = store_.Remove(name);
    for (const absl::Status& st : results) SKIFF_RETURN_IF_ERROR(st);
    return removed;
  }

  std::vector<v1::Service> List() const override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Service> out;
    for (const auto& [name, e] : services_) {
      if (!e.deleting) out.push_back(e.service);
    }
    return out;
  }

  std::vector<v1::ServiceStats> Stats() const override {
    struct Snapshot {
      v1::Service service;
      std::shared_ptr<ServicePool> pool;
      v1::ServiceStats stats;
    };
    std::vector<Snapshot> snaps;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [name, e] : services_) {
        if (e.deleting) continue;
        Snapshot s{e.service, e.pool, {}};
        s.stats.set_name(name);
        s.stats.set_starting(static_cast<uint32_t>(e.starting.size()));
        s.stats.set_cold_starts(e.cold_starts);
        s.stats.set_last_start_error(e.last_start_error);
        snaps.push_back(std::move(s));
      }
    }
    std::vector<v1::ServiceStats> out;
    for (Snapshot& s : snaps) {
      const PoolStats ps = s.pool->Stats();
      s.stats.set_ready(ps.ready);
      s.stats.set_draining(ps.draining);
      s.stats.set_in_flight(ps.in_flight);
      s.stats.set_queued(ps.queued);
      s.stats.set_desired(Desired(s.service, ps));
      s.stats.set_requests(ps.granted);
      out.push_back(std::move(s.stats));
    }
    return out;
  }

  std::vector<absl::Status> LoadErrors() const override {
    absl::MutexLock lock(&mu_);
    return load_errors_;
  }

  void InstanceReady(const std::string& service, const std::string& instance_id) override {
    absl::Duration took;
    {
      absl::MutexLock lock(&mu_);
      Entry* entry = LiveEntryLocked(service);
      if (entry == nullptr) return;
      Entry& e = *entry;
      auto st = e.starting.find(instance_id);
      if (st == e.starting.end()) return;  // not one we started, or counted already
      took = absl::Now() - st->second;
      e.starting.erase(st);
      ++e.cold_starts;
      e.last_start_error.clear();
      e.start_failures = 0;
    }
    if (cold_starts_ != nullptr) cold_starts_->Inc({service});
    if (cold_start_seconds_ != nullptr) {
      cold_start_seconds_->Observe({service}, absl::ToDoubleSeconds(took));
    }
  }

  void InstanceExited(const std::string& service, const std::string& instance_id) override {
    std::shared_ptr<ServicePool> pool;
    std::string error;
    {
      absl::MutexLock lock(&mu_);
      Entry* entry = LiveEntryLocked(service);
      if (entry == nullptr) return;
      Entry& e = *entry;
      if (e.starting.erase(instance_id) > 0) {
        error = absl::StrCat("instance ", instance_id, " exited before it was Ready");
        e.last_start_error = error;
        e.last_start_failure = absl::Now();
        ++e.start_failures;
      }
      if (IsActivatorInstance(service, instance_id) && !e.stopping.contains(instance_id)) {
        e.exited.insert(instance_id);  // deleted on the next tick
      }
      pool = e.pool;
    }
    if (!error.empty()) FailIfNoCapacity(service, pool, error);
    Reconcile(service);  // restarts min_instances, or what queued requests need
  }

 private:
  struct Entry {
    v1::Service service;
    std::shared_ptr<ServicePool> pool;
    // Started by us and not Ready yet: id → when the start began.
    absl::flat_hash_map<std::string, absl::Time> starting;
    int creating = 0;                           // launcher->Create calls running
    absl::flat_hash_set<std::string> stopping;  // scale-down stops running
    absl::flat_hash_set<std::string> exited;    // ours, exited, to delete
    bool deleting = false;
    uint64_t cold_starts = 0;
    std::string last_start_error;
    absl::Time last_start_failure = absl::InfinitePast();
    uint32_t start_failures = 0;  // in a row, since the last start that became Ready
  };

  // The service's entry unless it is unknown or being deleted.
  Entry* LiveEntryLocked(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = services_.find(name);
    return it == services_.end() || it->second.deleting ? nullptr : &it->second;
  }
  // Its pool, or null when the service is unknown or being deleted.
  std::shared_ptr<ServicePool> LivePool(const std::string& name) {
    absl::MutexLock lock(&mu_);
    Entry* e = LiveEntryLocked(name);
    return e == nullptr ? nullptr : e->pool;
  }
  // Lets a pool's demand listener (which may outlive us) reach the activator safely.
  struct Anchor {
    absl::Mutex mu;
    Activator* self ABSL_GUARDED_BY(mu) = nullptr;
  };
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // Creates the service's pool (or updates its options) and records the service.
  void Install(v1::Service s) {
    const std::string name = s.name();
    bool known = false;
    {
      absl::MutexLock lock(&mu_);
      known = services_.contains(name);
    }
    std::shared_ptr<ServicePool> pool = router_->PutService(name, OptionsOf(s));
    if (!known) {
      pool->SetDemandListener([anchor = anchor_, name] {
        absl::ReaderMutexLock lock(&anchor->mu);
        if (anchor->self != nullptr) anchor->self->Reconcile(name);
      });
    }
    absl::MutexLock lock(&mu_);
    Entry& e = services_[name];
    e.service = std::move(s);
    e.pool = std::move(pool);
  }

  // Starts instances until the live ones reach the desired count. Live: Ready in the pool,
  // started by us and not Ready yet, or listed by the launcher as neither STOPPING nor
  // being stopped by us (instances skiffd recovered after a restart, not Ready yet or not
  // yet back in the pool). The launcher is asked only when ready + starting falls short.
  void Reconcile(const std::string& name) {
    std::shared_ptr<ServicePool> pool = LivePool(name);
    if (pool == nullptr) return;
    const PoolStats st = pool->Stats();
    {
      absl::MutexLock lock(&mu_);
      const Entry* e = LiveEntryLocked(name);
      if (e == nullptr || stop_) return;
      if (Desired(e->service, st) <= st.ready + e->starting.size()) return;  // the common case
    }
    const std::vector<v1::Instance> listed = launcher_->ListLive(name);
    const std::vector<BackendStats> backends = pool->Backends();
    std::vector<std::string> launches;
    v1::InstanceSpec spec;
    std::string fail_with;
    {
      absl::MutexLock lock(&mu_);
      Entry* entry = LiveEntryLocked(name);
      if (entry == nullptr || stop_) return;
      Entry& e = *entry;
      absl::flat_hash_set<std::string> live;
      for (const v1::Instance& inst : listed) {
        if (inst.state() != v1::STOPPING && !e.stopping.contains(inst.id())) live.insert(inst.id());
      }
      for (const BackendStats& b : backends) {
        if (!b.draining && !e.stopping.contains(b.instance_id)) live.insert(b.instance_id);
      }
      for (const auto& [id, since] : e.starting) live.insert(id);
      const uint32_t want = Desired(e.service, st);
      const uint32_t have = static_cast<uint32_t>(live.size());
      if (want <= have) return;
      if (absl::Now() - e.last_start_failure < StartBackoff(e.start_failures)) {
        if (have == 0 && st.queued > 0) fail_with = e.last_start_error;
      } else {
        spec = e.service.template_();
        const absl::Time now = absl::Now();
        for (uint32_t i = have; i < want; ++i) {
          std::string id = NewInstanceId(name);
          while (live.contains(id)) id = NewInstanceId(name);
          live.insert(id);
          e.starting[id] = now;
          ++e.creating;
          launches.push_back(std::move(id));
        }
      }
    }
    if (!fail_with.empty()) {
      pool->FailQueued(503, absl::StrCat("cold start of ", name, " failed: ", fail_with));
    }
    for (std::string& id : launches) {
      Spawn([this, name, id = std::move(id), spec, pool] { Launch(name, id, spec, pool); });
    }
  }

  // On its own thread: one start.
  void Launch(const std::string& name, const std::string& id, const v1::InstanceSpec& spec,
              const std::shared_ptr<ServicePool>& pool) {
    const absl::Status st = launcher_->Create(id, spec);
    bool check_capacity = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = services_.find(name);
      if (it == services_.end()) return;  // cannot happen: Delete waits for creating == 0
      Entry& e = it->second;
      --e.creating;
      if (!st.ok()) {
        e.starting.erase(id);
        e.last_start_error = std::string(st.message());
        e.last_start_failure = absl::Now();
        ++e.start_failures;
        check_capacity = e.starting.empty() && !e.deleting;
      }
    }
    if (check_capacity) FailIfNoCapacity(name, pool, std::string(st.message()));
  }

  // A start failed: if nothing can take the queued requests, they get 503 with the error.
  void FailIfNoCapacity(const std::string& name, const std::shared_ptr<ServicePool>& pool,
                        const std::string& error) {
    if (pool->Stats().ready > 0) return;
    {
      absl::MutexLock lock(&mu_);
      auto it = services_.find(name);
      if (it == services_.end() || !it->second.starting.empty()) return;
    }
    pool->FailQueued(503, absl::StrCat("cold start of ", name, " failed: ", error));
  }

  void ControlLoop() {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), kTick);
        if (stop_) return;
      }
      std::vector<std::string> names;
      {
        absl::MutexLock lock(&mu_);
        for (const auto& [name, e] : services_) names.push_back(name);
      }
      for (const std::string& name : names) Tick(name);
      ReapWorkers();
    }
  }

  // One service: delete our exited instances, keep min_instances / demand, scale down
  // an idle service to min_instances.
  void Tick(const std::string& name) {
    Reconcile(name);
    std::shared_ptr<ServicePool> pool = LivePool(name);
    if (pool == nullptr) return;
    const PoolStats st = pool->Stats();
    const std::vector<BackendStats> backends = pool->Backends();
    std::vector<std::string> to_delete;
    std::vector<std::string> to_stop;
    absl::Duration grace;
    {
      absl::MutexLock lock(&mu_);
      Entry* entry = LiveEntryLocked(name);
      if (entry == nullptr) return;
      Entry& e = *entry;
      to_delete.assign(e.exited.begin(), e.exited.end());
      e.exited.clear();
      for (const std::string& id : to_delete) e.stopping.insert(id);
      grace = FromProto(e.service.template_().termination_grace());
      // Idle for idle_timeout: down to min_instances. Otherwise down to max_instances (a
      // Put may have lowered it). Only instances with nothing in flight, and only ours.
      const bool idle = st.in_flight == 0 && st.queued == 0 &&
                        absl::Now() - st.last_active >= FromProto(e.service.idle_timeout());
      const uint32_t keep = idle ? e.service.min_instances() : e.service.max_instances();
      uint32_t live = static_cast<uint32_t>(e.starting.size());
      std::vector<std::string> candidates;
      for (const BackendStats& b : backends) {
        if (b.draining || e.stopping.contains(b.instance_id)) continue;
        ++live;
        if (b.in_flight == 0 && IsActivatorInstance(name, b.instance_id)) {
          candidates.push_back(b.instance_id);
        }
      }
      // The newest go first (Backends() lists them in the order they were added).
      while (live > keep && !candidates.empty()) {
        to_stop.push_back(candidates.back());
        e.stopping.insert(candidates.back());
        candidates.pop_back();
        --live;
      }
    }
    for (const std::string& id : to_delete) {
      Spawn([this, name, id] {
        (void)launcher_->StopAndDelete(id);  // exited already: this deletes it
        Forget(name, id);
      });
    }
    for (const std::string& id : to_stop) {
      pool->Drain(id);  // no new request lands on it
      Spawn([this, name, id, pool, grace] {
        pool->WaitIdle(id, absl::Now() + grace);
        (void)launcher_->StopAndDelete(id);
        pool->Remove(id);
        Forget(name, id);
      });
    }
  }

  void Forget(const std::string& name, const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto it = services_.find(name);
    if (it != services_.end()) {
      it->second.stopping.erase(id);
      it->second.exited.erase(id);
    }
  }

  void Spawn(absl::AnyInvocable<void()> fn) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    absl::MutexLock lock(&workers_mu_);
    workers_.push_back(Worker{std::thread([fn = std::move(fn), done]() mutable {
                                fn();
                                done->store(true);
                              }),
                              done});
  }

  void ReapWorkers() {
    std::list<Worker> finished;
    {
      absl::MutexLock lock(&workers_mu_);
      for (auto it = workers_.begin(); it != workers_.end();) {
        if (it->done->load()) {
          finished.splice(finished.end(), workers_, it++);
        } else {
          ++it;
        }
      }
    }
    for (Worker& w : finished) w.thread.join();
  }

  const ServiceStore store_;
  ServiceRouter* const router_;
  InstanceLauncher* const launcher_;
  CounterFamily* cold_starts_ = nullptr;
  HistogramFamily* cold_start_seconds_ = nullptr;
  const std::shared_ptr<Anchor> anchor_ = std::make_shared<Anchor>();

  // Serializes Put and Delete. Held while calling the router and the launcher; never
  // taken by callbacks.
  absl::Mutex admin_mu_;
  // Guards the service table. Never held while calling the launcher or a pool.
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> services_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> load_errors_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex workers_mu_;
  std::list<Worker> workers_ ABSL_GUARDED_BY(workers_mu_);
  std::thread control_;
};

}  // namespace

bool IsActivatorInstance(const std::string& service, const std::string& instance_id) {
  if (instance_id.size() != service.size() + 6) return false;
  if (instance_id.compare(0, service.size(), service) != 0 || instance_id[service.size()] != '-') {
    return false;
  }
  for (size_t i = service.size() + 1; i < instance_id.size(); ++i) {
    const char c = instance_id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<ServiceActivator>> ServiceActivator::Create(
    std::string state_dir, ServiceRouter* router, InstanceLauncher* launcher,
    MetricsRegistry* metrics) {
  SKIFF_ASSIGN_OR_RETURN(ServiceStore store,
                         ServiceStore::Open(absl::StrCat(state_dir, "/services")));
  SKIFF_ASSIGN_OR_RETURN(ServiceStore::Loaded loaded, store.Load());
  auto activator = std::make_unique<Activator>(std::move(store), router, launcher, metrics);
  activator->Start(std::move(loaded.services), std::move(loaded.skipped));
  return activator;
}

}  // namespace skiff::ingress
