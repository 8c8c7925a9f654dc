#include "agent/instances/spec_validation.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"

namespace skiff::agent {
namespace {

std::string Quote(const std::string& s) {
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, 64)), s.size() > 64 ? "...\"" : "\"");
}

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

absl::Status CheckString(const std::string& field, const std::string& s) {
  if (s.size() > kMaxStringBytes) {
    return Bad(field, absl::StrCat("longer than ", kMaxStringBytes, " bytes"));
  }
  if (HasNul(s)) return Bad(field, "contains a NUL byte");
  return absl::OkStatus();
}

// Checks a Duration's own encoding and its range [min_s, max_s] (seconds, inclusive).
absl::Status CheckDuration(const std::string& field, const google::protobuf::Duration& d,
                           int64_t min_s, int64_t max_s, bool allow_zero) {
  if (d.nanos() <= -1000000000 || d.nanos() >= 1000000000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return Bad(field, "malformed duration");
  }
  if (d.seconds() < 0 || d.nanos() < 0) return Bad(field, "must not be negative");
  const bool zero = d.seconds() == 0 && d.nanos() == 0;
  if (zero && !allow_zero) return Bad(field, "must be > 0");
  if (d.seconds() < min_s || d.seconds() > max_s || (d.seconds() == max_s && d.nanos() > 0)) {
    return Bad(field, absl::StrCat(d.seconds(), "s out of range ", min_s, "s..", max_s, "s"));
  }
  return absl::OkStatus();
}

absl::Status CheckEnvKey(const std::string& key) {
  const std::string field = absl::StrCat("spec.env[", Quote(key), "]");
  if (key.empty()) return Bad("spec.env", "empty key");
  if (key.size() > 256) return Bad(field, "key longer than 256 bytes");
  for (char c : key) {
    if (c == '=') return Bad(field, "key contains '='");
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return Bad(field, "key must be printable ASCII without spaces");
    }
  }
  if (key[0] >= '0' && key[0] <= '9') return Bad(field, "key must not start with a digit");
  if (key == "PORT" || key == "TASK_INDEX" || key == "TASK_COUNT" || key == "TASK_ATTEMPT") {
    return Bad(field, "is reserved (set by skiff)");
  }
  return absl::OkStatus();
}

absl::Status CheckUser(const std::string& user) {
  if (user.empty()) return absl::OkStatus();
  if (user.size() > 256) return Bad("spec.user", "longer than 256 bytes");
  size_t colons = 0;
  for (char c : user) {
    if (c == ':') {
      ++colons;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return Bad("spec.user", absl::StrCat(Quote(user), " has an invalid character"));
  }
  if (colons > 1 || user.front() == ':' || user.back() == ':') {
    return Bad("spec.user", absl::StrCat(Quote(user), " is not user[:group]"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidLabelKey(const std::string& key) {
  if (key.empty() || key.size() > 63) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(key.front())) return false;
  for (char c : key) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-' && c != '/') return false;
  }
  return true;
}

absl::Status ValidateSpec(const v1::InstanceSpec& spec) {
  // Image.
  if (spec.image().empty()) return Bad("spec.image", "required");
  if (spec.image().size() > 4096) return Bad("spec.image", "longer than 4096 bytes");
  for (char c : spec.image()) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return Bad("spec.image", absl::StrCat(Quote(spec.image()), " contains an invalid byte"));
    }
  }
  // Process.
  if (static_cast<size_t>(spec.command_size()) > kMaxArgvEntries) {
    return Bad("spec.command", absl::StrCat("more than ", kMaxArgvEntries, " entries"));
  }
  if (static_cast<size_t>(spec.args_size()) > kMaxArgvEntries) {
    return Bad("spec.args", absl::StrCat("more than ", kMaxArgvEntries, " entries"));
  }
  for (int i = 0; i < spec.command_size(); ++i) {
    SKIFF_RETURN_IF_ERROR(CheckString(absl::StrCat("spec.command[", i, "]"), spec.command(i)));
  }
  if (spec.command_size() > 0 && spec.command(0).empty()) {
    return Bad("spec.command[0]", "must not be empty");
  }
  for (int i = 0; i < spec.args_size(); ++i) {
    SKIFF_RETURN_IF_ERROR(CheckString(absl::StrCat("spec.args[", i, "]"), spec.args(i)));
  }
  if (spec.env_size() > static_cast<int>(kMaxEnvEntries)) {
    return Bad("spec.env", absl::StrCat("more than ", kMaxEnvEntries, " entries"));
  }
  for (const auto& [key, value] : spec.env()) {
    SKIFF_RETURN_IF_ERROR(CheckEnvKey(key));
    SKIFF_RETURN_IF_ERROR(CheckString(absl::StrCat("spec.env[", Quote(key), "]"), value));
  }
  if (!spec.working_dir().empty()) {
    SKIFF_RETURN_IF_ERROR(CheckString("spec.working_dir", spec.working_dir()));
    if (spec.working_dir().front() != '/') {
      return Bad("spec.working_dir", absl::StrCat(Quote(spec.working_dir()), " is not absolute"));
    }
    if (spec.working_dir().size() > 4096) return Bad("spec.working_dir", "longer than 4096 bytes");
  }
  SKIFF_RETURN_IF_ERROR(CheckUser(spec.user()));

  // Port, generation, kind.
  if (spec.port() < 1 || spec.port() > 65535) {
    return Bad("spec.port", absl::StrCat(spec.port(), " out of range 1..65535"));
  }
  if (spec.generation() != v1::GEN1 && spec.generation() != v1::GEN2) {
    return Bad("spec.generation", absl::StrCat("unknown value ", spec.generation()));
  }
  if (spec.kind() != v1::SERVICE && spec.kind() != v1::JOB) {
    return Bad("spec.kind", absl::StrCat("unknown value ", spec.kind()));
  }
  if (spec.kind() == v1::JOB) {
    if (spec.task_count() > 0 && spec.task_index() >= spec.task_count()) {
      return Bad("spec.task_index",
                 absl::StrCat(spec.task_index(), " must be < spec.task_count ", spec.task_count()));
    }
  } else if (spec.task_index() != 0 || spec.task_count() != 0 || spec.task_attempt() != 0) {
    const char* field = spec.task_index() != 0   ? "spec.task_index"
                        : spec.task_count() != 0 ? "spec.task_count"
                                                 : "spec.task_attempt";
    return Bad(field, "only valid for kind JOB");
  }

  // Resources.
  if (spec.vcpus_milli() < kMinVcpusMilli) {
    return Bad("spec.vcpus_milli",
               absl::StrCat(spec.vcpus_milli(), " below the minimum ", kMinVcpusMilli));
  }
  if (spec.memory_bytes() == 0) return Bad("spec.memory_bytes", "must be > 0");
  if (spec.memory_bytes() < kMinMemoryBytes) {
    return Bad("spec.memory_bytes",
               absl::StrCat(spec.memory_bytes(), " below the minimum ", kMinMemoryBytes));
  }

  // Lifecycle.
  SKIFF_RETURN_IF_ERROR(CheckDuration("spec.termination_grace", spec.termination_grace(), 0,
                                      kMaxGraceSeconds, /*allow_zero=*/true));
  SKIFF_RETURN_IF_ERROR(CheckDuration("spec.startup_timeout", spec.startup_timeout(), 0,
                                      kMaxStartupTimeoutSeconds, /*allow_zero=*/false));

  // Labels.
  if (spec.labels_size() > static_cast<int>(kMaxLabels)) {
    return Bad("spec.labels", absl::StrCat("more than ", kMaxLabels, " labels"));
  }
  for (const auto& [key, value] : spec.labels()) {
    if (!IsValidLabelKey(key)) {
      return Bad(absl::StrCat("spec.labels[", Quote(key), "]"),
                 "key must be 1..63 of [A-Za-z0-9._/-], starting alphanumeric");
    }
    if (value.size() > 63) {
      return Bad(absl::StrCat("spec.labels[", Quote(key), "]"), "value longer than 63 bytes");
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f ||
          c == ',' || c == '=' || c == '!') {
        return Bad(absl::StrCat("spec.labels[", Quote(key), "]"),
                   "value must be printable ASCII without spaces, ',', '=' or '!'");
      }
    }
  }

  // Ingress fields.
  if (spec.concurrency() < 1 || spec.concurrency() > kMaxConcurrency) {
    return Bad("spec.concurrency",
               absl::StrCat(spec.concurrency(), " out of range 1..", kMaxConcurrency));
  }
  if (spec.cpu_allocation() != v1::REQUEST && spec.cpu_allocation() != v1::INSTANCE) {
    return Bad("spec.cpu_allocation", absl::StrCat("unknown value ", spec.cpu_allocation()));
  }
  SKIFF_RETURN_IF_ERROR(CheckDuration("spec.request_timeout", spec.request_timeout(), 0,
                                      kMaxRequestTimeoutSeconds, /*allow_zero=*/false));
  return absl::OkStatus();
}

absl::Status CheckCapacity(const v1::InstanceSpec& spec, const Resources& free) {
  if (spec.vcpus_milli() > free.vcpus_milli) {
    return absl::ResourceExhaustedError(absl::StrCat("spec.vcpus_milli: ", spec.vcpus_milli(),
                                                     " exceeds the node's free capacity of ",
                                                     free.vcpus_milli));
  }
  if (spec.memory_bytes() > free.memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("spec.memory_bytes: ", spec.memory_bytes(),
                                                     " exceeds the node's free capacity of ",
                                                     free.memory_bytes));
  }
  return absl::OkStatus();
}

}  // namespace skiff::agent
