#pragma once

// The instance state machine: CREATED → STARTED → READY → STOPPING → EXITED, fed by
// the shim's status stream. A status only moves an instance forward. A status that
// skips states (the shim reported RUNNING and EXITED while the agent was not looking)
// still yields an event for every step that happened, judged by the shim's timestamps,
// so watchers always see a consistent story. READY is never implied for a JOB or an
// instance that never passed its probe.

#include <vector>

#include "google/protobuf/timestamp.pb.h"
#include "skiff/v1/agent.pb.h"
#include "skiff/v1/shim.pb.h"

namespace skiff::agent {

// The agent state for a shim state (CREATING → CREATED, RUNNING → STARTED, ...).
v1::InstanceState ToInstanceState(v1::shim::State state);

// Applies `status` to `instance` (state, pid, timestamps, exit) and returns the events
// it implies, in order, without sequence numbers. Returns nothing for a status that
// would move the instance backwards or changes no state.
std::vector<v1::Event> ApplyShimStatus(const v1::shim::ShimStatus& status, v1::Instance* instance);

// The wall clock now, with nanoseconds. (Debian's protobuf 3.21 TimeUtil::GetCurrentTime()
// truncates to whole seconds: never use it.)
google::protobuf::Timestamp NowTimestamp();

// An exit for an instance whose shim vanished without recording one.
v1::shim::ShimStatus LostStatus(const std::string& message);

}  // namespace skiff::agent
