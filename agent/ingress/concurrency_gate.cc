#include "agent/ingress/concurrency_gate.h"

#include <algorithm>
#include <atomic>
#include <list>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace skiff::ingress {
namespace {

// Tickets come from one process-wide counter, so a pool's own tickets and the router's never
// collide. 0 means "no ticket".
std::atomic<uint64_t> g_next_ticket{1};
uint64_t NextTicket() { return g_next_ticket.fetch_add(1, std::memory_order_relaxed); }

// Work that must run with no pool lock held: deliveries (CpuThrottle::RequestStarted, then
// `done`), throttle releases, demand notifications. A thread that is already running such
// work (a `done` that releases its lease at once, which grants the next waiter, whose `done`
// releases...) appends to the outermost run instead of recursing, so the stack stays flat
// however long the queue; the order of the work is kept.
using Action = absl::AnyInvocable<void()>;
// What a call has to run once its lock is released: most calls have one or two (a grant, a
// throttle transition), kept inline so the request path allocates no list for them.
using Actions = absl::InlinedVector<Action, 2>;
thread_local Actions* t_pending = nullptr;

// Runs `actions` in order, outside any lock. An action may release or grant in turn; what
// that queues runs after it, from the same loop, instead of nesting (indexing, not
// iterators: the list grows while it runs).
void RunUnlocked(Actions actions) {
  if (actions.empty()) return;
  if (t_pending != nullptr) {
    for (Action& a : actions) t_pending->push_back(std::move(a));
    return;
  }
  t_pending = &actions;
  for (size_t i = 0; i < actions.size(); ++i) {
    Action a = std::move(actions[i]);
    a();
  }
  t_pending = nullptr;
}

RouteOutcome ErrorOutcome(const std::string& service, int http_status, std::string message,
                          std::optional<absl::Duration> retry_after) {
  RouteOutcome o;
  o.http_status = http_status;
  o.message = std::move(message);
  o.retry_after = retry_after;
  o.service = service;
  return o;
}

bool IsServiceName(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(i > 0 && c == '-')) return false;
  }
  return true;
}

// A DNS-style host name (non-empty labels of [a-z0-9-], dots between), lower-case input;
// label lengths are the service-name check's business.
bool IsHostName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    ++label;
  }
  return label > 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  return out;
}

// What a Host header says, for the router: a service name, a host this node does not serve
// (another domain, an IP literal: 404), or something malformed (400).
struct ParsedHost {
  enum class Kind { kService, kNotOurs, kMalformed };
  Kind kind = Kind::kMalformed;
  std::string service;  // kService
  std::string error;    // otherwise
};

ParsedHost ParseHost(std::string_view raw, std::string_view node_domain) {
  ParsedHost p;
  // For error messages (Debian's Abseil has its own string_view type).
  const absl::string_view shown(raw.data(), std::min<size_t>(raw.size(), 256));
  if (raw.empty()) {
    p.error = "Host: empty";
    return p;
  }
  if (raw.size() > 512) {
    p.error = absl::StrCat("Host ", shown, "...: longer than 512 bytes");
    return p;
  }
  std::string_view name = raw;
  std::string_view port;
  bool ip_literal = false;
  if (name.front() == '[') {
    const size_t close = name.find(']');
    if (close == std::string_view::npos) {
      p.error = absl::StrCat("Host ", shown, ": unterminated IP literal");
      return p;
    }
    std::string_view rest = name.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        p.error = absl::StrCat("Host ", shown, ": junk after IP literal");
        return p;
      }
      port = rest.substr(1);
    }
    name = name.substr(0, close + 1);
    ip_literal = true;
  } else if (const size_t colon = name.find(':'); colon != std::string_view::npos) {
    port = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  uint32_t port_value = 0;
  bool port_ok = port.size() <= 5;
  for (char c : port) {
    port_ok = port_ok && c >= '0' && c <= '9';
    port_value = port_value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!port_ok || port_value > 65535) {
    p.error = absl::StrCat("Host ", shown, ": bad port");
    return p;
  }
  if (ip_literal) {
    for (char c : name.substr(1, name.size() - 2)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        p.error = absl::StrCat("Host ", shown, ": bad IP literal");
        return p;
      }
    }
    p.kind = ParsedHost::Kind::kNotOurs;
    p.error = absl::StrCat("Host ", shown, ": an IP literal names no service");
    return p;
  }
  std::string host = Lower(name);
  if (!host.empty() && host.back() == '.') host.pop_back();  // absolute form "svc.domain."
  if (!IsHostName(host)) {
    p.error = absl::StrCat("Host ", shown, ": not a host name");
    return p;
  }
  std::string_view domain = node_domain;  // compared without case: not lowered per request
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  std::string service;
  if (host.find('.') == std::string::npos) {
    service = host;
  } else if (!domain.empty() && host.size() > domain.size() + 1 &&
             absl::EqualsIgnoreCase(
                 absl::string_view(host.data() + host.size() - domain.size(), domain.size()),
                 absl::string_view(domain.data(), domain.size())) &&
             host[host.size() - domain.size() - 1] == '.') {
    service = host.substr(0, host.size() - domain.size() - 1);
  } else {
    p.kind = ParsedHost::Kind::kNotOurs;
    p.error = absl::StrCat("Host ", shown, ": not <service>.",
                           domain.empty() ? "<none>" : Lower(domain), " nor a bare service name");
    return p;
  }
  if (!IsServiceName(service)) {
    // A dotted prefix ("a.b.skiff.local") or a label too odd for a service name.
    p.error = absl::StrCat("Host ", shown, ": service name \"", service,
                           "\" is not [a-z0-9][a-z0-9-]{0,62}");
    p.kind = service.find('.') == std::string::npos ? ParsedHost::Kind::kMalformed
                                                    : ParsedHost::Kind::kNotOurs;
    return p;
  }
  p.kind = ParsedHost::Kind::kService;
  p.service = std::move(service);
  return p;
}

}  // namespace

absl::StatusOr<std::string> ServiceNameFromHost(std::string_view host,
                                                std::string_view node_domain) {
  ParsedHost p = ParseHost(host, node_domain);
  if (p.kind != ParsedHost::Kind::kService) return absl::InvalidArgumentError(p.error);
  return std::move(p.service);
}

// ---------------------------------------------------------------------------------------
// ServicePool

struct ServicePool::Backend {
  std::shared_ptr<const BackendInfo> info;
  std::shared_ptr<CpuThrottle> throttle;
  uint32_t concurrency = 1;
  uint32_t in_flight = 0;
  bool draining = false;
  bool removed = false;  // forgotten by the pool; its leases still count down here
};

struct ServicePool::Waiter {
  uint64_t ticket = 0;
  std::string pin;  // empty: any backend
  absl::Time deadline;
  absl::AnyInvocable<void(RouteOutcome)> done;
};

class ServicePool::Core : public std::enable_shared_from_this<ServicePool::Core> {
 public:
  Core(std::string service, PoolOptions options)
      : service_(std::move(service)), options_(options), last_active_(absl::Now()) {}

  const std::string& service() const { return service_; }

  void SetOptions(PoolOptions options) {
    absl::MutexLock l(&mu_);
    options_ = options;
  }

  void SetDemandListener(absl::AnyInvocable<void()> on_demand) {
    auto listener = std::make_shared<absl::AnyInvocable<void()>>(std::move(on_demand));
    absl::MutexLock l(&mu_);
    listener_ = std::move(listener);
  }

  void SetDeadlineHook(std::function<void(absl::Time)> hook) {
    absl::MutexLock l(&mu_);
    deadline_hook_ = std::move(hook);
  }

  void Add(BackendInfo info, std::shared_ptr<CpuThrottle> throttle) {
    Actions actions;
    {
      absl::MutexLock l(&mu_);
      std::shared_ptr<Backend> b = FindLocked(info.instance_id);
      if (b == nullptr) {
        b = std::make_shared<Backend>();
        backends_.push_back(b);
      }
      b->concurrency = std::clamp<uint32_t>(info.concurrency, 1, 1000);
      b->info = std::make_shared<const BackendInfo>(std::move(info));
      b->throttle = std::move(throttle);
      b->draining = false;
      GrantWaitersLocked(&actions);
    }
    RunUnlocked(std::move(actions));
  }

  bool Drain(const std::string& instance_id) {
    Actions actions;
    {
      absl::MutexLock l(&mu_);
      std::shared_ptr<Backend> b = FindLocked(instance_id);
      if (b == nullptr) return false;
      b->draining = true;
      FailPinnedLocked(
          instance_id, 503,
          absl::StrCat("instance ", instance_id, " of service ", service_, " is draining"),
          options_.retry_after, &actions);
    }
    RunUnlocked(std::move(actions));
    return true;
  }

  bool WaitIdle(const std::string& instance_id, absl::Time deadline) {
    absl::MutexLock l(&mu_);
    auto idle = [this, &instance_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      std::shared_ptr<Backend> b = FindLocked(instance_id);
      return b == nullptr || b->in_flight == 0;
    };
    return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
  }

  void Remove(const std::string& instance_id) {
    Actions actions;
    {
      absl::MutexLock l(&mu_);
      auto it = std::find_if(backends_.begin(), backends_.end(),
                             [&](const auto& b) { return b->info->instance_id == instance_id; });
      if (it == backends_.end()) return;
      (*it)->removed = true;
      backends_.erase(it);
      FailPinnedLocked(
          instance_id, 404,
          absl::StrCat("instance ", instance_id, " is no longer in service ", service_),
          std::nullopt, &actions);
    }
    RunUnlocked(std::move(actions));
  }

  uint64_t Acquire(uint64_t ticket, const std::string& pin,
                   absl::AnyInvocable<void(RouteOutcome)> done) {
    Actions actions;
    std::function<void(absl::Time)> hook;
    absl::Time deadline;
    bool queued = false;
    {
      absl::MutexLock l(&mu_);
      Decision d = DecideLocked(pin);
      if (d.granted != nullptr) {
        actions.push_back(GrantLocked(d.granted, std::move(done)));
      } else if (d.answer) {
        actions.push_back(
            [done = std::move(done), o = std::move(*d.answer)]() mutable { done(std::move(o)); });
      } else if (queue_.size() >= options_.max_queue) {
        ++rejected_queue_full_;
        actions.push_back(Answer(
            std::move(done), 429,
            absl::StrCat("queue of service ", service_, " is full (", queue_.size(), " waiting)"),
            options_.retry_after));
      } else {
        deadline = absl::Now() + options_.queue_timeout;
        queue_.push_back(Waiter{ticket, pin, deadline, std::move(done)});
        by_ticket_[ticket] = std::prev(queue_.end());
        queued = true;
        hook = deadline_hook_;
        AddDemandLocked(&actions);
      }
    }
    if (hook) hook(deadline);
    RunUnlocked(std::move(actions));
    return queued ? ticket : 0;
  }

  // Acquire's answer when it needs no waiting: a lease, or an error. Nullopt when the request
  // would queue (nothing is queued), and also when called from inside the gate's own
  // callbacks, whose follow-up work must keep its order (Acquire then).
  std::optional<RouteOutcome> TryAcquire(const std::string& pin) {
    if (t_pending != nullptr) return std::nullopt;
    Decision d;
    std::shared_ptr<const BackendInfo> info;  // read under the lock: Add replaces them
    std::shared_ptr<CpuThrottle> throttle;
    {
      absl::MutexLock l(&mu_);
      d = DecideLocked(pin);
      if (d.granted != nullptr) {
        TakeSlotLocked(*d.granted);
        info = d.granted->info;
        throttle = d.granted->throttle;
      }
    }
    if (d.granted != nullptr) {
      return Deliver(weak_from_this(), d.granted, std::move(info), std::move(throttle), service_,
                     d.retry_after);
    }
    return std::move(d.answer);
  }

  void Cancel(uint64_t ticket) {
    Actions actions;
    {
      absl::MutexLock l(&mu_);
      auto it = by_ticket_.find(ticket);
      if (it == by_ticket_.end()) return;
      actions.push_back(Answer(std::move(it->second->done), 503,
                               absl::StrCat("request to service ", service_, " cancelled"),
                               options_.retry_after));
      queue_.erase(it->second);
      by_ticket_.erase(it);
      AddDemandLocked(&actions);
    }
    RunUnlocked(std::move(actions));
  }

  size_t FailQueued(int http_status, const std::string& message) {
    Actions actions;
    size_t n = 0;
    {
      absl::MutexLock l(&mu_);
      n = FailAllLocked(http_status, message, &actions);
      if (n > 0) AddDemandLocked(&actions);
    }
    RunUnlocked(std::move(actions));
    return n;
  }

  std::optional<absl::Time> ExpireQueued(absl::Time now) {
    Actions actions;
    std::optional<absl::Time> earliest;
    {
      absl::MutexLock l(&mu_);
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->deadline > now) {
          if (!earliest || it->deadline < *earliest) earliest = it->deadline;
          ++it;
          continue;
        }
        ++expired_in_queue_;
        actions.push_back(Answer(
            std::move(it->done), 503,
            absl::StrCat("no capacity: waited ", absl::FormatDuration(options_.queue_timeout),
                         " in the queue of service ", service_),
            options_.retry_after));
        by_ticket_.erase(it->ticket);
        it = queue_.erase(it);
      }
      if (!actions.empty()) AddDemandLocked(&actions);
    }
    RunUnlocked(std::move(actions));
    return earliest;
  }

  // The pool is being destroyed: waiters get 503, nothing is granted or announced again.
  void Close() {
    Actions actions;
    {
      absl::MutexLock l(&mu_);
      closed_ = true;
      FailAllLocked(503, absl::StrCat("service ", service_, " deleted"), &actions);
      listener_ = nullptr;
      deadline_hook_ = nullptr;
    }
    RunUnlocked(std::move(actions));
  }

  std::shared_ptr<CpuThrottle> LikelyThrottle() const {
    absl::MutexLock l(&mu_);
    if (closed_) return nullptr;
    std::shared_ptr<Backend> b = ChooseLocked();
    return b == nullptr ? nullptr : b->throttle;
  }

  PoolStats Stats() const {
    absl::MutexLock l(&mu_);
    PoolStats s;
    for (const auto& b : backends_) {
      (b->draining ? s.draining : s.ready) += 1;
      s.in_flight += b->in_flight;
      if (!b->draining) s.capacity += b->concurrency;
    }
    s.queued = static_cast<uint32_t>(queue_.size());
    s.granted = granted_.load(std::memory_order_relaxed);
    s.rejected_queue_full = rejected_queue_full_;
    s.expired_in_queue = expired_in_queue_;
    s.last_active = last_active_;
    return s;
  }

  std::vector<BackendStats> Backends() const {
    absl::MutexLock l(&mu_);
    std::vector<BackendStats> out;
    out.reserve(backends_.size());
    for (const auto& b : backends_) {
      out.push_back(BackendStats{b->info->instance_id, b->in_flight, b->concurrency, b->draining});
    }
    return out;
  }

 private:
  static bool HasRoom(const Backend& b) { return !b.draining && b.in_flight < b.concurrency; }

  std::shared_ptr<Backend> FindLocked(const std::string& instance_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& b : backends_) {
      if (b->info->instance_id == instance_id) return b;
    }
    return nullptr;
  }

  // Fewest in flight among backends with room; ties go to the one added first.
  std::shared_ptr<Backend> ChooseLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::shared_ptr<Backend> best;
    for (const auto& b : backends_) {
      if (HasRoom(*b) && (best == nullptr || b->in_flight < best->in_flight)) best = b;
    }
    return best;
  }

  Action Answer(absl::AnyInvocable<void(RouteOutcome)> done, int http_status, std::string message,
                std::optional<absl::Duration> retry_after) const {
    return [done = std::move(done),
            o = ErrorOutcome(service_, http_status, std::move(message), retry_after)]() mutable {
      done(std::move(o));
    };
  }

  // What a request for `pin` gets now: a backend with room (no slot taken yet), an answer
  // (the service is deleted, the pinned instance is unknown or draining), or neither (it
  // has to queue).
  struct Decision {
    std::shared_ptr<Backend> granted;
    std::optional<RouteOutcome> answer;
    absl::Duration retry_after;
  };
  Decision DecideLocked(const std::string& pin) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Decision d;
    d.retry_after = options_.retry_after;
    std::shared_ptr<Backend> b;
    if (closed_) {
      d.answer = ErrorOutcome(service_, 503, absl::StrCat("service ", service_, " deleted"),
                              options_.retry_after);
    } else if (!pin.empty() && (b = FindLocked(pin)) == nullptr) {
      d.answer = ErrorOutcome(
          service_, 404, absl::StrCat("no instance ", pin, " in service ", service_), std::nullopt);
    } else if (b != nullptr && b->draining) {
      d.answer = ErrorOutcome(
          service_, 503, absl::StrCat("instance ", pin, " of service ", service_, " is draining"),
          options_.retry_after);
    } else if (pin.empty() ? (b = ChooseLocked()) != nullptr : HasRoom(*b)) {
      d.granted = std::move(b);
    }
    return d;
  }

  void TakeSlotLocked(Backend& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++b.in_flight;
    last_active_ = absl::Now();
  }

  // A slot taken on `b` becomes a lease: the throttle is started first (if it refuses, the
  // slot goes back and the answer is 503). No pool lock held.
  static RouteOutcome Deliver(const std::weak_ptr<Core>& core, const std::shared_ptr<Backend>& b,
                              std::shared_ptr<const BackendInfo> info,
                              std::shared_ptr<CpuThrottle> throttle, const std::string& service,
                              absl::Duration retry_after) {
    if (throttle != nullptr) {
      absl::Status st = throttle->RequestStarted();
      if (!st.ok()) {
        ReleaseSlot(core, b, nullptr);
        return ErrorOutcome(service, 503, absl::StrCat("cpu throttle: ", st.message()),
                            retry_after);
      }
    }
    if (auto c = core.lock()) c->granted_.fetch_add(1, std::memory_order_relaxed);
    RouteOutcome o;
    o.service = service;
    o.lease = Lease(std::move(info), [core, b, throttle = std::move(throttle)]() {
      ReleaseSlot(core, b, throttle);
    });
    return o;
  }

  // Takes a slot on `b` now; the returned action delivers the lease (Deliver) to `done`.
  Action GrantLocked(const std::shared_ptr<Backend>& b, absl::AnyInvocable<void(RouteOutcome)> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    TakeSlotLocked(*b);
    return [core = weak_from_this(), b, info = b->info, throttle = b->throttle, service = service_,
            retry_after = options_.retry_after, done = std::move(done)]() mutable {
      done(Deliver(core, b, std::move(info), std::move(throttle), service, retry_after));
    };
  }

  // A lease ends (or a grant the throttle refused): the slot goes back, queued requests that
  // now fit are granted, then the throttle hears of it (after the grants, so a request handed
  // straight on keeps the instance unthrottled without a floor/full flap).
  static void ReleaseSlot(const std::weak_ptr<Core>& weak, const std::shared_ptr<Backend>& b,
                          std::shared_ptr<CpuThrottle> throttle) {
    Actions actions;
    if (std::shared_ptr<Core> core = weak.lock()) {
      absl::MutexLock l(&core->mu_);
      if (b->in_flight > 0) --b->in_flight;
      core->last_active_ = absl::Now();
      if (!core->closed_ && !b->removed) core->GrantWaitersLocked(&actions);
    }
    if (throttle != nullptr) {
      actions.push_back([throttle = std::move(throttle)]() {
        // Nowhere to report it: the throttle counts its own write errors.
        (void)throttle->RequestFinished();
      });
    }
    RunUnlocked(std::move(actions));
  }

  // Grants queued requests that fit, in FIFO order. A pinned waiter takes only its instance
  // and does not hold up the ones behind it; once an unpinned waiter finds no room nobody
  // behind it can be served either.
  void GrantWaitersLocked(Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool granted = false;
    for (auto it = queue_.begin(); it != queue_.end();) {
      std::shared_ptr<Backend> b;
      if (it->pin.empty()) {
        b = ChooseLocked();
        if (b == nullptr) break;
      } else {
        b = FindLocked(it->pin);
        if (b == nullptr || !HasRoom(*b)) {
          ++it;
          continue;
        }
      }
      actions->push_back(GrantLocked(b, std::move(it->done)));
      by_ticket_.erase(it->ticket);
      it = queue_.erase(it);
      granted = true;
    }
    if (granted) AddDemandLocked(actions);
  }

  void FailPinnedLocked(const std::string& instance_id, int http_status, const std::string& message,
                        std::optional<absl::Duration> retry_after, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool any = false;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->pin != instance_id) {
        ++it;
        continue;
      }
      actions->push_back(Answer(std::move(it->done), http_status, message, retry_after));
      by_ticket_.erase(it->ticket);
      it = queue_.erase(it);
      any = true;
    }
    if (any) AddDemandLocked(actions);
  }

  size_t FailAllLocked(int http_status, const std::string& message, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::optional<absl::Duration> retry_after;
    if (http_status == 429 || http_status == 503) retry_after = options_.retry_after;
    const size_t n = queue_.size();
    for (Waiter& w : queue_) {
      actions->push_back(Answer(std::move(w.done), http_status, message, retry_after));
    }
    queue_.clear();
    by_ticket_.clear();
    return n;
  }

  void AddDemandLocked(Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (listener_ == nullptr) return;
    actions->push_back([listener = listener_]() { (*listener)(); });
  }

  const std::string service_;
  std::atomic<uint64_t> granted_{0};

  mutable absl::Mutex mu_;
  PoolOptions options_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Backend>> backends_ ABSL_GUARDED_BY(mu_);  // in order added
  std::list<Waiter> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::list<Waiter>::iterator> by_ticket_ ABSL_GUARDED_BY(mu_);
  uint64_t rejected_queue_full_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t expired_in_queue_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_active_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<absl::AnyInvocable<void()>> listener_ ABSL_GUARDED_BY(mu_);
  std::function<void(absl::Time)> deadline_hook_ ABSL_GUARDED_BY(mu_);
};

ServicePool::ServicePool(std::string service, PoolOptions options)
    : service_(service), core_(std::make_shared<Core>(std::move(service), options)) {}

ServicePool::~ServicePool() { core_->Close(); }

void ServicePool::SetOptions(PoolOptions options) { core_->SetOptions(options); }
void ServicePool::SetDemandListener(absl::AnyInvocable<void()> on_demand) {
  core_->SetDemandListener(std::move(on_demand));
}
void ServicePool::SetDeadlineHook(std::function<void(absl::Time)> hook) {
  core_->SetDeadlineHook(std::move(hook));
}
void ServicePool::Add(BackendInfo info, std::shared_ptr<CpuThrottle> throttle) {
  core_->Add(std::move(info), std::move(throttle));
}
bool ServicePool::Drain(const std::string& instance_id) { return core_->Drain(instance_id); }
bool ServicePool::WaitIdle(const std::string& instance_id, absl::Time deadline) {
  return core_->WaitIdle(instance_id, deadline);
}
void ServicePool::Remove(const std::string& instance_id) { core_->Remove(instance_id); }
uint64_t ServicePool::Acquire(const std::string& pin_instance,
                              absl::AnyInvocable<void(RouteOutcome)> done) {
  return core_->Acquire(NextTicket(), pin_instance, std::move(done));
}
std::optional<RouteOutcome> ServicePool::TryAcquire(const std::string& pin_instance) {
  return core_->TryAcquire(pin_instance);
}
uint64_t ServicePool::AcquireWithTicket(uint64_t ticket, const std::string& pin_instance,
                                        absl::AnyInvocable<void(RouteOutcome)> done) {
  return core_->Acquire(ticket, pin_instance, std::move(done));
}
void ServicePool::Close() { core_->Close(); }
void ServicePool::Cancel(uint64_t ticket) { core_->Cancel(ticket); }
size_t ServicePool::FailQueued(int http_status, const std::string& message) {
  return core_->FailQueued(http_status, message);
}
std::optional<absl::Time> ServicePool::ExpireQueued(absl::Time now) {
  return core_->ExpireQueued(now);
}
std::shared_ptr<CpuThrottle> ServicePool::LikelyThrottle() const { return core_->LikelyThrottle(); }
PoolStats ServicePool::Stats() const { return core_->Stats(); }
std::vector<BackendStats> ServicePool::Backends() const { return core_->Backends(); }

// ---------------------------------------------------------------------------------------
// ServiceRouter

struct ServiceRouter::Reaper {
  absl::Mutex mu;
  absl::Time earliest ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  bool stop ABSL_GUARDED_BY(mu) = false;

  void Notify(absl::Time deadline) {
    absl::MutexLock l(&mu);
    if (deadline < earliest) earliest = deadline;  // wakes the reaper's Await
  }
};

struct ServiceRouter::Tickets {
  absl::Mutex mu;
  absl::flat_hash_map<uint64_t, std::weak_ptr<ServicePool>> waiting ABSL_GUARDED_BY(mu);
};

ServiceRouter::ServiceRouter(std::string node_domain)
    : node_domain_(std::move(node_domain)),
      reaper_(std::make_shared<Reaper>()),
      tickets_(std::make_shared<Tickets>()),
      reaper_thread_([this] { ReaperLoop(); }) {}

ServiceRouter::~ServiceRouter() {
  {
    absl::MutexLock l(&reaper_->mu);
    reaper_->stop = true;
  }
  reaper_thread_.join();
  // Nothing expires queued requests any more: answer them now (pools someone else still
  // holds live on).
  for (const auto& pool : Pools()) pool->FailQueued(503, "ingress stopping");
}

// Sleeps until the earliest queue deadline any pool reported (or an earlier one arrives),
// then expires every pool's overdue waiters and sleeps until the earliest remaining one.
void ServiceRouter::ReaperLoop() {
  Reaper& r = *reaper_;
  r.mu.Lock();
  while (!r.stop) {
    const absl::Time target = r.earliest;
    auto wake = [&r, target]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.mu) { return r.stop || r.earliest < target; };
    r.mu.AwaitWithDeadline(absl::Condition(&wake), target);
    if (r.stop) break;
    if (r.earliest < target || absl::Now() < target) continue;
    r.earliest = absl::InfiniteFuture();
    r.mu.Unlock();
    std::vector<std::shared_ptr<ServicePool>> pools = Pools();
    absl::Time next = absl::InfiniteFuture();
    const absl::Time now = absl::Now();
    for (const auto& pool : pools) {
      if (std::optional<absl::Time> t = pool->ExpireQueued(now); t && *t < next) next = *t;
    }
    pools.clear();  // a pool deleted meanwhile is destroyed here, with no lock held
    r.mu.Lock();
    if (next < r.earliest) r.earliest = next;
  }
  r.mu.Unlock();
}

std::shared_ptr<ServicePool> ServiceRouter::PutService(const std::string& service,
                                                       PoolOptions options) {
  absl::MutexLock l(&mu_);
  auto it = pools_.find(service);
  if (it != pools_.end()) {
    it->second->SetOptions(options);
    return it->second;
  }
  auto pool = std::make_shared<ServicePool>(service, options);
  pool->SetDeadlineHook([weak = std::weak_ptr<Reaper>(reaper_)](absl::Time deadline) {
    if (auto r = weak.lock()) r->Notify(deadline);
  });
  pools_.emplace(service, pool);
  return pool;
}

bool ServiceRouter::DeleteService(const std::string& service) {
  std::shared_ptr<ServicePool> pool;
  {
    absl::MutexLock l(&mu_);
    auto it = pools_.find(service);
    if (it == pools_.end()) return false;
    pool = std::move(it->second);
    pools_.erase(it);
  }
  // Whoever else holds the pool (the activator) may keep it a while; it takes no requests.
  pool->Close();
  return true;
}

std::shared_ptr<ServicePool> ServiceRouter::Find(std::string_view service) const {
  absl::MutexLock l(&mu_);
  auto it = pools_.find(service);
  return it == pools_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<ServicePool>> ServiceRouter::Pools() const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<ServicePool>> out;
  out.reserve(pools_.size());
  for (const auto& [name, pool] : pools_) out.push_back(pool);
  return out;
}

std::shared_ptr<ServicePool> ServiceRouter::PoolFor(std::string_view host_header,
                                                    std::optional<RouteOutcome>* error) const {
  ParsedHost host = ParseHost(host_header, node_domain_);
  if (host.kind == ParsedHost::Kind::kMalformed) {
    *error = ErrorOutcome("", 400, std::move(host.error), std::nullopt);
    return nullptr;
  }
  if (host.kind == ParsedHost::Kind::kNotOurs) {
    *error =
        ErrorOutcome("", 404, absl::StrCat("no service on this node: ", host.error), std::nullopt);
    return nullptr;
  }
  std::shared_ptr<ServicePool> pool = Find(host.service);
  if (pool == nullptr) {
    *error = ErrorOutcome("", 404, absl::StrCat("no service ", host.service, " on this node"),
                          std::nullopt);
  }
  return pool;
}

std::optional<RouteOutcome> ServiceRouter::TryRoute(const RouteRequest& request) {
  std::optional<RouteOutcome> error;
  std::shared_ptr<ServicePool> pool = PoolFor(request.host, &error);
  if (pool == nullptr) return error;
  return pool->TryAcquire(request.pin_instance);
}

uint64_t ServiceRouter::Route(const RouteRequest& request,
                              absl::AnyInvocable<void(RouteOutcome)> done) {
  std::optional<RouteOutcome> error;
  std::shared_ptr<ServicePool> pool = PoolFor(request.host, &error);
  if (pool == nullptr) {
    done(std::move(*error));
    return 0;
  }
  // Registered before Acquire (whose `done` may run at once, on any thread) and forgotten
  // when `done` runs, so the map never keeps a finished request.
  const uint64_t ticket = NextTicket();
  {
    absl::MutexLock l(&tickets_->mu);
    tickets_->waiting.emplace(ticket, pool);
  }
  pool->AcquireWithTicket(ticket, request.pin_instance,
                          [tickets = std::weak_ptr<Tickets>(tickets_), ticket,
                           done = std::move(done)](RouteOutcome outcome) mutable {
                            if (auto t = tickets.lock()) {
                              absl::MutexLock l(&t->mu);
                              t->waiting.erase(ticket);
                            }
                            done(std::move(outcome));
                          });
  absl::MutexLock l(&tickets_->mu);
  return tickets_->waiting.contains(ticket) ? ticket : 0;
}

CpuHold ServiceRouter::Anticipate(std::string_view host) {
  // Nothing in this process is throttled (all busy, or cpu_allocation INSTANCE): nothing to
  // raise, and no need to parse the host.
  if (CpuThrottle::MaybeThrottledCount() == 0) return CpuHold();
  ParsedHost parsed = ParseHost(host, node_domain_);
  if (parsed.kind != ParsedHost::Kind::kService) return CpuHold();
  std::shared_ptr<ServicePool> pool = Find(parsed.service);
  if (pool == nullptr) return CpuHold();
  std::shared_ptr<CpuThrottle> throttle = pool->LikelyThrottle();
  if (throttle == nullptr || !throttle->RequestStarted().ok()) return CpuHold();
  // A failed write on the way back leaves the state kUnknown; the next transition retries.
  return CpuHold([throttle = std::move(throttle)] { throttle->RequestFinished().IgnoreError(); });
}

void ServiceRouter::Cancel(uint64_t ticket) {
  std::shared_ptr<ServicePool> pool;
  {
    absl::MutexLock l(&tickets_->mu);
    auto it = tickets_->waiting.find(ticket);
    if (it == tickets_->waiting.end()) return;
    pool = it->second.lock();
  }
  if (pool != nullptr) pool->Cancel(ticket);
}

}  // namespace skiff::ingress
