#pragma once

// Incremental reader of an instance's console.log: returns the complete records
// appended since the last call (a record still being written is held back until its
// newline arrives). Used by StreamLogs, with and without follow.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/instances/cri_log.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::agent {

class ConsoleLogReader {
 public:
  // NotFound if the file does not exist (yet).
  static absl::StatusOr<ConsoleLogReader> Open(const std::string& path);

  // Records completed since the last call; empty when none. A malformed record is
  // returned as a stdout record holding the raw line, so nothing is dropped.
  absl::StatusOr<std::vector<CriRecord>> ReadAvailable();

 private:
  ConsoleLogReader(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
  std::string pending_;  // bytes after the last newline
};

}  // namespace skiff::agent
