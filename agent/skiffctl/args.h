#pragma once

// A small cursor over a subcommand's arguments: long options with a value
// ("--port 8080" or "--port=8080"), boolean switches, positionals, and "--" after which
// everything is positional.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::skiffctl {

class Args {
 public:
  explicit Args(std::vector<std::string> args) : args_(std::move(args)) {}

  // Removes every occurrence of `name` (and `alias`, e.g. "-f") and says if any was there.
  bool Switch(const std::string& name, const std::string& alias = "");
  // The last value of `name`; InvalidArgument if it has none.
  absl::StatusOr<std::optional<std::string>> Value(const std::string& name,
                                                   const std::string& alias = "");
  // Every value of a repeatable option, in order.
  absl::StatusOr<std::vector<std::string>> Values(const std::string& name,
                                                  const std::string& alias = "");
  // After all options were taken: what is left before "--" (positionals; an unknown
  // option is an error) and, separately, everything after "--".
  absl::StatusOr<std::vector<std::string>> Positionals();
  std::vector<std::string> AfterDashDash() const;

  // For command families ("service put ..."): the first argument, if any, and an Args
  // over everything after it.
  std::optional<std::string> First() const;
  Args Rest() const;

 private:
  size_t End() const;  // index of "--" or size
  std::vector<std::string> args_;
};

}  // namespace skiff::skiffctl
