#include "agent/ingress/service_validation.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/ingress/activator.h"
#include "agent/instances/spec_defaults.h"
#include "agent/instances/spec_validation.h"
#include "sandbox/common/status.h"

namespace skiff::ingress {
namespace {

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("service.", field, ": ", why));
}

std::string Quote(const std::string& s) {
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, 64)), s.size() > 64 ? "...\"" : "\"");
}

// A Duration's own encoding: seconds and nanos of one sign, |nanos| < 1e9, not negative.
absl::Status CheckEncoding(const std::string& field, const google::protobuf::Duration& d) {
  if (d.nanos() <= -1000000000 || d.nanos() >= 1000000000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return Bad(field, "malformed duration");
  }
  if (d.seconds() < 0 || d.nanos() < 0) return Bad(field, "must not be negative");
  return absl::OkStatus();
}

absl::Status CheckRange(const std::string& field, const google::protobuf::Duration& d,
                        absl::Duration min, absl::Duration max) {
  SKIFF_RETURN_IF_ERROR(CheckEncoding(field, d));
  const absl::Duration v = FromProto(d);
  if (v < min || v > max) {
    return Bad(field, absl::StrCat(absl::FormatDuration(v), " out of range ",
                                   absl::FormatDuration(min), "..", absl::FormatDuration(max)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}

absl::Status ValidateServiceName(const std::string& name) {
  if (name.empty()) return Bad("name", "required");
  bool ok = name.size() <= kMaxServiceNameBytes &&
            ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) ok = false;
  }
  if (!ok) {
    return Bad("name", absl::StrCat(Quote(name), " must match [a-z0-9][a-z0-9-]{0,",
                                    kMaxServiceNameBytes - 1, "}"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Service> NormalizeService(v1::Service service) {
  SKIFF_RETURN_IF_ERROR(ValidateServiceName(service.name()));
  if (!service.has_template_()) return Bad("template", "required");
  v1::InstanceSpec* spec = service.mutable_template_();
  if (spec->kind() == v1::JOB) return Bad("template.kind", "must be SERVICE, not JOB");
  if (spec->kind() != v1::KIND_UNSPECIFIED && spec->kind() != v1::SERVICE) {
    return Bad("template.kind", absl::StrCat("unknown kind ", static_cast<int>(spec->kind())));
  }
  auto& labels = *spec->mutable_labels();
  if (auto it = labels.find(kServiceLabel); it != labels.end() && it->second != service.name()) {
    return Bad(
        absl::StrCat("template.labels[\"", kServiceLabel, "\"]"),
        absl::StrCat(Quote(it->second), " differs from the service name ", Quote(service.name())));
  }
  labels[kServiceLabel] = service.name();
  agent::ApplySpecDefaults(spec);
  if (absl::Status st = agent::ValidateSpec(*spec); !st.ok()) {
    // ValidateSpec names fields "spec.<field>"; here they are "service.template.<field>".
    std::string msg(st.message());
    if (absl::StartsWith(msg, "spec.")) msg = msg.substr(5);
    return absl::Status(st.code(), absl::StrCat("service.template.", msg));
  }

  if (service.max_instances() == 0) service.set_max_instances(kDefaultMaxInstances);
  if (service.max_instances() > kMaxMaxInstances) {
    return Bad("max_instances",
               absl::StrCat(service.max_instances(), " out of range 1..", kMaxMaxInstances));
  }
  if (service.min_instances() > service.max_instances()) {
    return Bad("min_instances", absl::StrCat(service.min_instances(), " is above max_instances ",
                                             service.max_instances()));
  }
  if (!service.has_idle_timeout()) *service.mutable_idle_timeout() = ToProto(kDefaultIdleTimeout);
  SKIFF_RETURN_IF_ERROR(
      CheckRange("idle_timeout", service.idle_timeout(), kMinIdleTimeout, kMaxIdleTimeout));
  if (service.max_queue() == 0) service.set_max_queue(kDefaultMaxQueue);
  if (service.max_queue() > kMaxMaxQueue) {
    return Bad("max_queue", absl::StrCat(service.max_queue(), " out of range 1..", kMaxMaxQueue));
  }
  const absl::Duration request_timeout = FromProto(spec->request_timeout());
  if (!service.has_queue_timeout()) {
    *service.mutable_queue_timeout() = ToProto(std::min(kDefaultQueueTimeout, request_timeout));
  }
  SKIFF_RETURN_IF_ERROR(
      CheckRange("queue_timeout", service.queue_timeout(), kMinQueueTimeout, request_timeout));
  return service;
}

}  // namespace skiff::ingress
