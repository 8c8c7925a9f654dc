#include "agent/ingress/instance_sync.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/ingress/activator.h"

namespace skiff::ingress {
namespace {

// The service an instance belongs to, or "".
std::string ServiceOf(const v1::Instance& instance) {
  auto it = instance.spec().labels().find(kServiceLabel);
  return it == instance.spec().labels().end() ? "" : it->second;
}

BackendInfo BackendOf(const v1::Instance& instance, const std::string& service) {
  BackendInfo b;
  b.instance_id = instance.id();
  b.service = service;
  b.ip = instance.ip();
  b.port = static_cast<uint16_t>(instance.port());
  b.concurrency = instance.spec().concurrency() == 0 ? 80 : instance.spec().concurrency();
  if (instance.spec().has_request_timeout()) {
    b.request_timeout = absl::Seconds(instance.spec().request_timeout().seconds()) +
                        absl::Nanoseconds(instance.spec().request_timeout().nanos());
  }
  return b;
}

}  // namespace

InstanceSync::InstanceSync(agent::InstanceController* controller, agent::EventBus* events,
                           ServiceRouter* router, InstanceSyncOptions options)
    : controller_(controller), events_(events), router_(router), options_(std::move(options)) {
  // Subscribe first so nothing between the reconcile and the thread's start is missed.
  subscription_ = events->Subscribe("");
  Reconcile();
  thread_ = std::thread([this] { Run(); });
}

InstanceSync::~InstanceSync() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  std::shared_ptr<agent::EventSubscription> sub;
  {
    absl::MutexLock lock(&mu_);
    sub = subscription_;
  }
  sub->Close();
  if (thread_.joinable()) thread_.join();
}

void InstanceSync::Run() {
  absl::Time next_reconcile = absl::Now() + options_.reconcile_every;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    absl::StatusOr<std::optional<v1::Event>> next = subscription_->Next(options_.tick_every);
    if (!next.ok()) {
      if (!absl::IsResourceExhausted(next.status())) return;  // closed: shutting down
      // Overflowed (events were lost): a fresh subscription, then start over from the table.
      std::shared_ptr<agent::EventSubscription> fresh = events_->Subscribe("");
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        subscription_ = std::move(fresh);
      }
      Reconcile();
      continue;
    }
    if (next->has_value()) OnEvent(**next);
    const absl::Time now = absl::Now();
    TickBoosts(now);
    if (now >= next_reconcile) {
      Reconcile();
      next_reconcile = now + options_.reconcile_every;
    }
  }
}

void InstanceSync::OnEvent(const v1::Event& event) {
  switch (event.type()) {
    case v1::Event::READY: {
      absl::StatusOr<v1::Instance> inst = controller_->Get(event.instance_id());
      if (!inst.ok()) return;
      if (std::shared_ptr<CpuThrottle> t = controller_->Throttle(inst->id()); t != nullptr) {
        if (std::optional<absl::Time> deadline = t->BoostDeadline(); deadline.has_value()) {
          absl::MutexLock lock(&mu_);
          boosts_[inst->id()] = {t, *deadline};
        }
      }
      if (inst->state() == v1::READY) Join(*inst);
      return;
    }
    case v1::Event::STOPPING:
      Leave(event.instance_id(), /*exited=*/false);
      return;
    case v1::Event::EXITED:
      Leave(event.instance_id(), /*exited=*/true);
      return;
    default:
      return;
  }
}

bool InstanceSync::Join(const v1::Instance& instance) {
  const std::string service = ServiceOf(instance);
  if (service.empty()) return false;
  std::shared_ptr<ServicePool> pool = router_->Find(service);
  if (pool == nullptr) return false;
  bool announce = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = members_.find(instance.id());
    if (it != members_.end() && it->second.pool.lock() == pool) {
      return !it->second.draining;  // already in (or draining: a stop is under way)
    }
    announce = it == members_.end();
    members_[instance.id()] = Member{service, pool, false};
  }
  pool->Add(BackendOf(instance, service), controller_->Throttle(instance.id()));
  if (announce && options_.on_ready) options_.on_ready(service, instance.id());
  return true;
}

void InstanceSync::Leave(const std::string& instance_id, bool exited) {
  Member member;
  {
    absl::MutexLock lock(&mu_);
    if (exited) boosts_.erase(instance_id);
    auto it = members_.find(instance_id);
    if (it == members_.end()) return;
    member = it->second;
    if (exited) {
      members_.erase(it);
    } else {
      it->second.draining = true;
    }
  }
  if (std::shared_ptr<ServicePool> pool = member.pool.lock(); pool != nullptr) {
    if (exited) {
      pool->Remove(instance_id);
    } else {
      pool->Drain(instance_id);
    }
  }
  if (exited && options_.on_exited) options_.on_exited(member.service, instance_id);
}

void InstanceSync::Drain(const v1::Instance& instance, absl::Time deadline) {
  std::shared_ptr<ServicePool> pool;
  {
    absl::MutexLock lock(&mu_);
    auto it = members_.find(instance.id());
    if (it == members_.end()) return;  // never took requests through the ingress
    it->second.draining = true;
    pool = it->second.pool.lock();
  }
  if (pool == nullptr) return;
  pool->Drain(instance.id());
  pool->WaitIdle(instance.id(), deadline);
}

void InstanceSync::TickBoosts(absl::Time now) {
  std::vector<std::shared_ptr<CpuThrottle>> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = boosts_.begin(); it != boosts_.end();) {
      if (it->second.second <= now) {
        if (auto t = it->second.first.lock(); t != nullptr) due.push_back(std::move(t));
        boosts_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  // A failed write is counted in the throttle's stats (exported); the next transition
  // retries it.
  for (auto& t : due) t->Tick().IgnoreError();
}

void InstanceSync::Reconcile() {
  absl::StatusOr<std::vector<v1::Instance>> live = controller_->List(kServiceLabel);
  if (!live.ok()) return;
  absl::flat_hash_map<std::string, const v1::Instance*> by_id;
  for (const v1::Instance& inst : *live) {
    by_id[inst.id()] = &inst;
    if (inst.state() == v1::READY) Join(inst);
  }
  // Members whose instance is gone or no longer READY, or whose pool was deleted.
  std::vector<std::pair<std::string, bool>> leave;  // id, exited
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, member] : members_) {
      auto it = by_id.find(id);
      if (it == by_id.end() || it->second->state() == v1::EXITED) {
        leave.emplace_back(id, true);
      } else if (it->second->state() != v1::READY && !member.draining) {
        leave.emplace_back(id, false);
      } else if (member.pool.expired()) {
        leave.emplace_back(id, true);
      }
    }
  }
  for (const auto& [id, exited] : leave) Leave(id, exited);
}

void InstanceSync::RegisterMetrics(MetricsRegistry* metrics) {
  metrics->AddCollector([this](GaugeWriter& w) {
    const std::vector<std::shared_ptr<ServicePool>> pools = router_->Pools();
    std::vector<std::pair<std::string, PoolStats>> stats;
    stats.reserve(pools.size());
    for (const auto& p : pools) stats.emplace_back(p->service(), p->Stats());
    w.Family("skiff_ingress_in_flight", "Requests in flight to the service's instances.");
    for (const auto& [name, s] : stats) w.Sample({{"service", name}}, s.in_flight);
    w.Family("skiff_ingress_queue_depth", "Requests waiting for an instance with room.");
    for (const auto& [name, s] : stats) w.Sample({{"service", name}}, s.queued);
    w.Family("skiff_ingress_capacity", "Sum of the Ready instances' concurrency.");
    for (const auto& [name, s] : stats) w.Sample({{"service", name}}, s.capacity);
    w.Family("skiff_ingress_instances", "Instances in the service's pool, by state.");
    for (const auto& [name, s] : stats) {
      w.Sample({{"service", name}, {"state", "ready"}}, s.ready);
      w.Sample({{"service", name}, {"state", "draining"}}, s.draining);
    }
    w.Family("skiff_ingress_queue_rejected_total",
             "Requests answered 429 (queue full) or 503 (queue wait expired).", "counter");
    for (const auto& [name, s] : stats) {
      w.Sample({{"service", name}, {"reason", "queue_full"}},
               static_cast<double>(s.rejected_queue_full));
      w.Sample({{"service", name}, {"reason", "queue_timeout"}},
               static_cast<double>(s.expired_in_queue));
    }

    const v1::Node node = controller_->GetNode();
    w.Family("skiff_instances", "Instances on this node, by state.");
    for (const char* state : {"CREATED", "STARTED", "READY", "STOPPING", "EXITED"}) {
      auto it = node.instances_by_state().find(state);
      w.Sample({{"state", state}}, it == node.instances_by_state().end() ? 0 : it->second);
    }

    // Throttles of the instances the ingress routes to.
    std::vector<std::string> ids;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, member] : members_) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    struct ThrottleSample {
      std::string id;
      CpuThrottle::Stats stats;
      uint64_t period_us;
    };
    std::vector<ThrottleSample> throttles;
    for (const std::string& id : ids) {
      if (auto t = controller_->Throttle(id); t != nullptr) {
        throttles.push_back({id, t->stats(), t->period_us()});
      }
    }
    w.Family("skiff_cpu_throttle_transitions_total",
             "Quota writes of the request-based CPU throttle: down to the floor, up to the full "
             "quota.",
             "counter");
    for (const auto& t : throttles) {
      w.Sample({{"instance", t.id}, {"direction", "throttle"}},
               static_cast<double>(t.stats.throttles));
      w.Sample({{"instance", t.id}, {"direction", "unthrottle"}},
               static_cast<double>(t.stats.unthrottles));
    }
    w.Family("skiff_cpu_throttle_write_errors_total", "Failed quota writes.", "counter");
    for (const auto& t : throttles) {
      w.Sample({{"instance", t.id}}, static_cast<double>(t.stats.write_errors));
    }
    w.Family("skiff_cpu_throttle_quota_cpus",
             "The CPU quota in effect, in CPUs (quota / period): the floor when idle.");
    for (const auto& t : throttles) {
      const double cpus = t.period_us == 0 ? 0.0
                                           : static_cast<double>(t.stats.quota_us) /
                                                 static_cast<double>(t.period_us);
      w.Sample({{"instance", t.id}}, cpus);
    }
  });
}

}  // namespace skiff::ingress
