#include "agent/instances/instance_state.h"

#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"

namespace skiff::agent {
namespace {

using google::protobuf::Timestamp;
using google::protobuf::util::TimeUtil;

Timestamp FromUnixNs(int64_t ns) {
  return ns > 0 ? TimeUtil::NanosecondsToTimestamp(ns) : NowTimestamp();
}

v1::Event::Type EventFor(v1::InstanceState state) {
  switch (state) {
    case v1::CREATED:
      return v1::Event::CREATED;
    case v1::STARTED:
      return v1::Event::STARTED;
    case v1::READY:
      return v1::Event::READY;
    case v1::STOPPING:
      return v1::Event::STOPPING;
    case v1::EXITED:
      return v1::Event::EXITED;
    default:
      return v1::Event::TYPE_UNSPECIFIED;
  }
}

v1::ExitReason ToExitReason(const v1::shim::ShimStatus& s) {
  if (s.exit_reason() > 0 && v1::ExitReason_IsValid(s.exit_reason())) {
    return static_cast<v1::ExitReason>(s.exit_reason());
  }
  return s.exit_signal() != 0 ? v1::SIGNALED : v1::COMPLETED;
}

}  // namespace

Timestamp NowTimestamp() {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
}

v1::InstanceState ToInstanceState(v1::shim::State state) {
  switch (state) {
    case v1::shim::CREATING:
      return v1::CREATED;
    case v1::shim::RUNNING:
      return v1::STARTED;
    case v1::shim::READY:
      return v1::READY;
    case v1::shim::STOPPING:
      return v1::STOPPING;
    case v1::shim::EXITED:
      return v1::EXITED;
    default:
      return v1::STATE_UNSPECIFIED;
  }
}

std::vector<v1::Event> ApplyShimStatus(const v1::shim::ShimStatus& status, v1::Instance* instance) {
  std::vector<v1::Event> events;
  const v1::InstanceState target = ToInstanceState(status.state());
  if (target == v1::STATE_UNSPECIFIED || target <= instance->state()) {
    // Same state: refresh the pid only (the shim may report it late).
    if (target == instance->state() && target != v1::EXITED && status.pid() > 0) {
      instance->set_pid(status.pid());
    }
    return events;
  }
  auto emit = [&](v1::InstanceState s, int64_t unix_ns) {
    v1::Event e;
    e.set_type(EventFor(s));
    e.set_instance_id(instance->id());
    *e.mutable_time() = FromUnixNs(unix_ns);
    events.push_back(std::move(e));
  };
  for (int s = instance->state() + 1; s <= target; ++s) {
    const auto state = static_cast<v1::InstanceState>(s);
    switch (state) {
      case v1::CREATED:
        emit(state, status.created_unix_ns());
        break;
      case v1::STARTED:
        if (state == target || status.started_unix_ns() > 0) {
          *instance->mutable_started_at() = FromUnixNs(status.started_unix_ns());
          emit(state, status.started_unix_ns());
        }
        break;
      case v1::READY:
        if (state == target || status.ready_unix_ns() > 0) {
          *instance->mutable_ready_at() = FromUnixNs(status.ready_unix_ns());
          emit(state, status.ready_unix_ns());
        }
        break;
      case v1::STOPPING:
        if (state == target || status.stopping_unix_ns() > 0) {
          emit(state, status.stopping_unix_ns());
        }
        break;
      case v1::EXITED: {
        *instance->mutable_exited_at() = FromUnixNs(status.exited_unix_ns());
        v1::ExitStatus* exit = instance->mutable_exit();
        exit->set_code(status.exit_code());
        exit->set_signal(status.exit_signal());
        exit->set_reason(ToExitReason(status));
        exit->set_message(status.exit_message());
        emit(state, status.exited_unix_ns());
        *events.back().mutable_exit() = *exit;
        break;
      }
      default:
        break;
    }
  }
  instance->set_state(target);
  instance->set_pid(target == v1::EXITED ? 0 : status.pid());
  return events;
}

v1::shim::ShimStatus LostStatus(const std::string& message) {
  v1::shim::ShimStatus s;
  s.set_state(v1::shim::EXITED);
  s.set_exit_code(-1);
  s.set_exit_reason(v1::LOST);
  s.set_exit_message(message);
  s.set_exited_unix_ns(absl::ToUnixNanos(absl::Now()));
  return s;
}

}  // namespace skiff::agent
