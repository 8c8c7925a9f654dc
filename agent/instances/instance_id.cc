#include "agent/instances/instance_id.h"

#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace skiff::agent {

absl::Status ValidateInstanceId(const std::string& id) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("instance_id: \"",
                                                   absl::CHexEscape(id.substr(0, 80)), "\" ", why,
                                                   " (want [a-z0-9][a-z0-9-]{0,62})"));
  };
  if (id.empty()) return bad("is empty");
  if (id.size() > 63) return bad("is longer than 63 characters");
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum) continue;
    if (c == '-' && i > 0) continue;
    return bad(absl::StrCat("has an invalid character at offset ", i));
  }
  return absl::OkStatus();
}

std::string GenerateInstanceId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("i-%012x", rng() & 0xffffffffffffULL);
}

}  // namespace skiff::agent
