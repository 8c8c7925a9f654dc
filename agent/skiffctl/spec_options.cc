#include "agent/skiffctl/spec_options.h"

#include <google/protobuf/util/time_util.h>

#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/skiffctl/quantity.h"
#include "sandbox/common/status.h"

namespace skiff::skiffctl {

google::protobuf::Duration DurationToProto(absl::Duration d) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

absl::StatusOr<uint32_t> ParseUint(const std::string& flag, const std::string& text) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": \"", text, "\" is not a number"));
  }
  return v;
}

absl::Status ParseSpecOptions(Args& args, v1::InstanceSpec* spec, SpecOptionSet set) {
  const bool boost = args.Switch("--cpu-boost");
  SKIFF_ASSIGN_OR_RETURN(auto port, args.Value("--port", "-p"));
  SKIFF_ASSIGN_OR_RETURN(auto memory, args.Value("--memory", "-m"));
  SKIFF_ASSIGN_OR_RETURN(auto cpu, args.Value("--cpu"));
  SKIFF_ASSIGN_OR_RETURN(auto envs, args.Values("--env", "-e"));
  SKIFF_ASSIGN_OR_RETURN(auto labels, args.Values("--label", "-l"));
  SKIFF_ASSIGN_OR_RETURN(auto grace, args.Value("--grace"));
  SKIFF_ASSIGN_OR_RETURN(auto gen, args.Value("--gen"));
  SKIFF_ASSIGN_OR_RETURN(auto entrypoint, args.Value("--entrypoint"));
  SKIFF_ASSIGN_OR_RETURN(auto workdir, args.Value("--workdir", "-w"));
  SKIFF_ASSIGN_OR_RETURN(auto user, args.Value("--user", "-u"));
  SKIFF_ASSIGN_OR_RETURN(auto concurrency, args.Value("--concurrency"));
  SKIFF_ASSIGN_OR_RETURN(auto startup_timeout, args.Value("--startup-timeout"));
  SKIFF_ASSIGN_OR_RETURN(auto request_timeout, args.Value("--request-timeout"));
  SKIFF_ASSIGN_OR_RETURN(auto cpu_allocation, args.Value("--cpu-allocation"));
  std::optional<std::string> task_index, task_count, task_attempt;
  if (set.job_options) {
    if (args.Switch("--job")) spec->set_kind(v1::JOB);
    SKIFF_ASSIGN_OR_RETURN(task_index, args.Value("--task-index"));
    SKIFF_ASSIGN_OR_RETURN(task_count, args.Value("--task-count"));
    SKIFF_ASSIGN_OR_RETURN(task_attempt, args.Value("--task-attempt"));
  }

  for (const std::string& a : args.AfterDashDash()) spec->add_args(a);
  spec->set_memory_bytes(512ull << 20);
  if (memory) {
    SKIFF_ASSIGN_OR_RETURN(uint64_t v, ParseMemory("memory", *memory));
    spec->set_memory_bytes(v);
  }
  if (cpu) {
    SKIFF_ASSIGN_OR_RETURN(uint32_t v, ParseCpu("cpu", *cpu));
    spec->set_vcpus_milli(v);
  }
  for (const std::string& kv : envs) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--env wants K=V, got ", kv));
    }
    (*spec->mutable_env())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const std::string& kv : labels) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--label wants k=v, got ", kv));
    }
    (*spec->mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto [opt, name, setter] :
       {std::tuple{&port, "--port", &v1::InstanceSpec::set_port},
        std::tuple{&task_index, "--task-index", &v1::InstanceSpec::set_task_index},
        std::tuple{&task_count, "--task-count", &v1::InstanceSpec::set_task_count},
        std::tuple{&task_attempt, "--task-attempt", &v1::InstanceSpec::set_task_attempt},
        std::tuple{&concurrency, "--concurrency", &v1::InstanceSpec::set_concurrency}}) {
    if (!*opt) continue;
    SKIFF_ASSIGN_OR_RETURN(uint32_t v, ParseUint(name, **opt));
    (spec->*setter)(v);
  }
  if (grace) {
    SKIFF_ASSIGN_OR_RETURN(absl::Duration v, ParseDurationFlag("grace", *grace));
    *spec->mutable_termination_grace() = DurationToProto(v);
  }
  if (startup_timeout) {
    SKIFF_ASSIGN_OR_RETURN(absl::Duration v,
                           ParseDurationFlag("startup-timeout", *startup_timeout));
    *spec->mutable_startup_timeout() = DurationToProto(v);
  }
  if (request_timeout) {
    SKIFF_ASSIGN_OR_RETURN(absl::Duration v,
                           ParseDurationFlag("request-timeout", *request_timeout));
    *spec->mutable_request_timeout() = DurationToProto(v);
  }
  if (gen) {
    if (*gen == "1") {
      spec->set_generation(v1::GEN1);
    } else if (*gen == "2") {
      spec->set_generation(v1::GEN2);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--gen wants 1 or 2, got ", *gen));
    }
  }
  if (cpu_allocation) {
    if (*cpu_allocation == "request") {
      spec->set_cpu_allocation(v1::REQUEST);
    } else if (*cpu_allocation == "instance") {
      spec->set_cpu_allocation(v1::INSTANCE);
    } else {
      return absl::InvalidArgumentError("--cpu-allocation wants request or instance");
    }
  }
  spec->set_startup_cpu_boost(boost);
  if (entrypoint) spec->add_command(*entrypoint);
  if (workdir) spec->set_working_dir(*workdir);
  if (user) spec->set_user(*user);
  return absl::OkStatus();
}

}  // namespace skiff::skiffctl
