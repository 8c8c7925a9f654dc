#pragma once

// ListInstances label selectors: comma-separated requirements, all of which must hold:
//   k=v   label k exists and equals v (also k==v)
//   k!=v  label k is absent or differs from v
//   k     label k exists
//   !k    label k is absent
// An empty selector matches everything.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/map.h"

namespace skiff::agent {

class LabelSelector {
 public:
  // InvalidArgument naming `label_selector` and the bad requirement.
  static absl::StatusOr<LabelSelector> Parse(const std::string& text);

  bool Matches(const google::protobuf::Map<std::string, std::string>& labels) const;

 private:
  enum class Op { kEquals, kNotEquals, kExists, kNotExists };
  struct Requirement {
    std::string key;
    Op op;
    std::string value;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace skiff::agent
