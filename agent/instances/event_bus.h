#pragma once

// Instance lifecycle events for WatchEvents. Publish() stamps each event with the next
// sequence number and appends it to every subscriber's own queue, so each subscriber
// sees every event published after it subscribed, in sequence order, with no gaps. A
// subscriber that falls more than `max_queue` events behind is closed with
// ResourceExhausted rather than silently losing events. Thread-safe.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::agent {

class EventBus;

class EventSubscription {
 public:
  // The next event, or nullopt after `timeout` with none. ResourceExhausted if this
  // subscriber overflowed; Cancelled once the bus or the subscription was closed.
  absl::StatusOr<std::optional<v1::Event>> Next(absl::Duration timeout);
  void Close();

 private:
  friend class EventBus;
  EventSubscription(std::string instance_filter, size_t max_queue)
      : filter_(std::move(instance_filter)), max_queue_(max_queue) {}
  void Push(const v1::Event& event);

  const std::string filter_;
  const size_t max_queue_;
  absl::Mutex mu_;
  std::deque<v1::Event> queue_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class EventBus {
 public:
  explicit EventBus(size_t max_queue = 100000) : max_queue_(max_queue) {}
  ~EventBus() { CloseAll(); }

  // Stamps `event` with the next sequence number (and the time, if unset), delivers
  // it, and returns the stamped event.
  v1::Event Publish(v1::Event event);
  // Events of one instance only when `instance_id` is non-empty.
  std::shared_ptr<EventSubscription> Subscribe(const std::string& instance_id);
  // Closes every subscription (agent shutdown).
  void CloseAll();
  uint64_t last_sequence() const;

 private:
  const size_t max_queue_;
  mutable absl::Mutex mu_;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::weak_ptr<EventSubscription>> subscribers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skiff::agent
