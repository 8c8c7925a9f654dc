#pragma once

// The InstanceSpec options shared by `run` and `service put`: -m/--memory, --cpu,
// -p/--port, -e/--env, -l/--label, --grace, --startup-timeout, --request-timeout, --gen,
// --entrypoint, -w/--workdir, -u/--user, --concurrency, --cpu-allocation, --cpu-boost,
// and (run only) --job, --task-index, --task-count, --task-attempt. Arguments after "--"
// become spec.args. The image is not among them (a positional).

#include "absl/status/status.h"
#include "agent/skiffctl/args.h"
#include "skiff/v1/agent.pb.h"

namespace skiff::skiffctl {

struct SpecOptionSet {
  bool job_options = true;  // --job and the task fields
};

// Takes the options out of `args` (leaving positionals and anything unknown) and sets
// the fields of `spec`; memory defaults to 512Mi. InvalidArgument naming the flag.
absl::Status ParseSpecOptions(Args& args, v1::InstanceSpec* spec, SpecOptionSet set = {});

// Durations and counts shared by the commands.
google::protobuf::Duration DurationToProto(absl::Duration d);
absl::StatusOr<uint32_t> ParseUint(const std::string& flag, const std::string& text);

}  // namespace skiff::skiffctl
