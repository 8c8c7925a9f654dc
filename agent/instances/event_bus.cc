#include "agent/instances/event_bus.h"

#include "absl/strings/str_cat.h"
#include "agent/instances/instance_state.h"

namespace skiff::agent {

void EventSubscription::Push(const v1::Event& event) {
  if (!filter_.empty() && event.instance_id() != filter_) return;
  absl::MutexLock lock(&mu_);
  if (closed_ || overflowed_) return;
  if (queue_.size() >= max_queue_) {
    overflowed_ = true;
    return;
  }
  queue_.push_back(event);
}

absl::StatusOr<std::optional<v1::Event>> EventSubscription::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || closed_ || overflowed_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (!queue_.empty()) {
    v1::Event event = std::move(queue_.front());
    queue_.pop_front();
    return std::optional<v1::Event>(std::move(event));
  }
  if (overflowed_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("event subscriber fell more than ", max_queue_, " events behind"));
  }
  if (closed_) return absl::CancelledError("event stream closed");
  return std::optional<v1::Event>();
}

void EventSubscription::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

v1::Event EventBus::Publish(v1::Event event) {
  absl::MutexLock lock(&mu_);
  event.set_sequence(++sequence_);
  if (!event.has_time()) {
    *event.mutable_time() = NowTimestamp();
  }
  std::erase_if(subscribers_, [&](const std::weak_ptr<EventSubscription>& weak) {
    auto sub = weak.lock();
    if (sub) sub->Push(event);
    return sub == nullptr;
  });
  return event;
}

std::shared_ptr<EventSubscription> EventBus::Subscribe(const std::string& instance_id) {
  std::shared_ptr<EventSubscription> sub(new EventSubscription(instance_id, max_queue_));
  absl::MutexLock lock(&mu_);
  subscribers_.push_back(sub);
  return sub;
}

void EventBus::CloseAll() {
  absl::MutexLock lock(&mu_);
  for (auto& weak : subscribers_) {
    if (auto sub = weak.lock()) sub->Close();
  }
  subscribers_.clear();
}

uint64_t EventBus::last_sequence() const {
  absl::MutexLock lock(&mu_);
  return sequence_;
}

}  // namespace skiff::agent
