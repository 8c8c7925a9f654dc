#include "agent/instances/spec_defaults.h"

namespace skiff::agent {

void ApplySpecDefaults(v1::InstanceSpec* spec) {
  if (spec->port() == 0) spec->set_port(kDefaultPort);
  if (spec->vcpus_milli() == 0) spec->set_vcpus_milli(kDefaultVcpusMilli);
  if (spec->generation() == v1::GENERATION_UNSPECIFIED) spec->set_generation(v1::GEN1);
  if (spec->kind() == v1::KIND_UNSPECIFIED) spec->set_kind(v1::SERVICE);
  if (spec->cpu_allocation() == v1::CPU_ALLOCATION_UNSPECIFIED) {
    spec->set_cpu_allocation(v1::REQUEST);
  }
  if (spec->concurrency() == 0) spec->set_concurrency(kDefaultConcurrency);
  if (!spec->has_termination_grace()) {
    spec->mutable_termination_grace()->set_seconds(kDefaultGraceSeconds);
  }
  if (!spec->has_startup_timeout()) {
    spec->mutable_startup_timeout()->set_seconds(kDefaultStartupTimeoutSeconds);
  }
  if (!spec->has_request_timeout()) {
    spec->mutable_request_timeout()->set_seconds(kDefaultRequestTimeoutSeconds);
  }
}

}  // namespace skiff::agent
