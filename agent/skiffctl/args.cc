#include "agent/skiffctl/args.h"

#include "absl/strings/str_cat.h"

namespace skiff::skiffctl {

size_t Args::End() const {
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == "--") return i;
  }
  return args_.size();
}

bool Args::Switch(const std::string& name, const std::string& alias) {
  bool found = false;
  for (size_t i = 0; i < End();) {
    if (args_[i] == name || (!alias.empty() && args_[i] == alias)) {
      args_.erase(args_.begin() + static_cast<long>(i));
      found = true;
    } else {
      ++i;
    }
  }
  return found;
}

absl::StatusOr<std::vector<std::string>> Args::Values(const std::string& name,
                                                      const std::string& alias) {
  std::vector<std::string> out;
  for (size_t i = 0; i < End();) {
    const std::string& a = args_[i];
    if (a == name || (!alias.empty() && a == alias)) {
      if (i + 1 >= End()) return absl::InvalidArgumentError(absl::StrCat(name, ": needs a value"));
      out.push_back(args_[i + 1]);
      args_.erase(args_.begin() + static_cast<long>(i), args_.begin() + static_cast<long>(i) + 2);
    } else if (a.rfind(name + "=", 0) == 0) {
      out.push_back(a.substr(name.size() + 1));
      args_.erase(args_.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
  return out;
}

absl::StatusOr<std::optional<std::string>> Args::Value(const std::string& name,
                                                       const std::string& alias) {
  absl::StatusOr<std::vector<std::string>> all = Values(name, alias);
  if (!all.ok()) return all.status();
  if (all->empty()) return std::optional<std::string>();
  return std::optional<std::string>(all->back());
}

absl::StatusOr<std::vector<std::string>> Args::Positionals() {
  std::vector<std::string> out;
  for (size_t i = 0; i < End(); ++i) {
    if (args_[i].size() > 1 && args_[i][0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", args_[i]));
    }
    out.push_back(args_[i]);
  }
  return out;
}

std::vector<std::string> Args::AfterDashDash() const {
  const size_t end = End();
  if (end == args_.size()) return {};
  return std::vector<std::string>(args_.begin() + static_cast<long>(end) + 1, args_.end());
}

std::optional<std::string> Args::First() const {
  if (args_.empty()) return std::nullopt;
  return args_.front();
}

Args Args::Rest() const {
  if (args_.empty()) return Args({});
  return Args(std::vector<std::string>(args_.begin() + 1, args_.end()));
}

}  // namespace skiff::skiffctl
